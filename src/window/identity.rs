//! Migrator matching from authenticated session facts only.

use std::net::IpAddr;

use crate::config::{Config, Migrator};

use super::SessionIdentity;

/// Returns true when `who` matches a configured migrator for its database.
///
/// Only facts the proxy verified take part: the user name that passed
/// authentication, the verified client certificate subject and the client
/// address. Startup parameters such as `application_name` never do.
pub fn is_migrator(config: &Config, who: &SessionIdentity) -> bool {
    matches_any(&config.migrators, who)
}

pub(super) fn matches_any(migrators: &[Migrator], who: &SessionIdentity) -> bool {
    migrators.iter().any(|migrator| matches(migrator, who))
}

/// Returns true when `user` is a configured migrator allowed on `database`,
/// before certificate and address checks.
pub(super) fn is_migrator_user(migrators: &[Migrator], user: &str, database: &str) -> bool {
    migrators
        .iter()
        .any(|migrator| migrator.user == user && covers_database(migrator, database))
}

fn matches(migrator: &Migrator, who: &SessionIdentity) -> bool {
    if migrator.user != who.user || !covers_database(migrator, &who.database) {
        return false;
    }

    // NOTE: subjects compare as exact RFC 4514 strings, so the configured
    // value must use the same attribute order and spacing as the verifier.
    if let Some(expected) = &migrator.client_cert_subject {
        if who.client_cert_subject.as_deref() != Some(expected.as_str()) {
            return false;
        }
    }

    if migrator.source.is_empty() {
        return true;
    }
    let address = canonical_ip(who.client_addr.ip());
    migrator.source.iter().any(|net| net.contains(&address))
}

fn covers_database(migrator: &Migrator, database: &str) -> bool {
    migrator.databases.is_empty() || migrator.databases.iter().any(|name| name == database)
}

/// Maps an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) to plain IPv4 so that
/// IPv4 source networks match clients of a dual-stack listener.
fn canonical_ip(address: IpAddr) -> IpAddr {
    address.to_canonical()
}
