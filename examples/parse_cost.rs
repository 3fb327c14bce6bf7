use std::time::Instant;
fn main() {
    let analyzer = schemagate::policy::Analyzer::new(0);
    let n = 20000;
    let start = Instant::now();
    for i in 0..n {
        let sql = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {i};");
        analyzer.analyze(&sql, Default::default()).unwrap();
    }
    println!("analyze: {:?} per statement", start.elapsed() / n);
    let start = Instant::now();
    for i in 0..n {
        let sql = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {i};");
        pg_query::parse(&sql, pg_query::ParserOptions::default()).unwrap();
    }
    println!("pg_query::parse: {:?} per statement", start.elapsed() / n);
    let start = Instant::now();
    for i in 0..n {
        let sql = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {i};");
        pg_query::fingerprint(&sql, 0, 0).unwrap();
    }
    println!("pg_query::fingerprint: {:?} per statement", start.elapsed() / n);
}
