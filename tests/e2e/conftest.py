"""Fixtures shared by the end-to-end tests: one cluster per session, proxies per test."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Cluster, Proxy  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "policy: needs the statement policy (denials of protected-table writes)")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A PostgreSQL cluster with fixture F applied, stopped and deleted at session end."""
    pg = Cluster.start(tmp_path_factory.mktemp("cluster"))
    try:
        pg.apply_fixture_f()
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def make_proxy(cluster, tmp_path):
    """Factory: make_proxy(**overrides) starts a proxy; every one is stopped at teardown."""
    started = []

    def factory(**overrides):
        proxy = Proxy.start(cluster, tmp_path, **overrides)
        started.append(proxy)
        return proxy

    yield factory

    for proxy in started:
        proxy.kill()


@pytest.fixture
def proxy(make_proxy):
    """A proxy with the default configuration."""
    return make_proxy()


@pytest.fixture
def oracle(cluster):
    """Run SQL as the superuser directly on database `app`."""

    def run(sql, params=None):
        return cluster.execute(sql, dbname="app", params=params)

    return run


@pytest.fixture
def clean_app(cluster):
    """Empty widgets and restore alembic_version = 'aaaa0001' before the test."""
    cluster.reset_app_rows()


@pytest.fixture
def app_dsn(proxy):
    return proxy.dsn()


@pytest.fixture
def mig_dsn(proxy):
    return proxy.dsn(user="migrator", password="mig-pw")


@pytest.fixture
def direct_app_dsn(cluster):
    return cluster.dsn(user="app", password="app-pw", dbname="app")
