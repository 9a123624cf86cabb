//! A database of the test's own on the PostgreSQL server, dropped afterwards.

use assent_store::AnyStore;
use std::sync::Arc;

pub struct Database {
    server_url: String,
    name: String,
    pub url: String,
}

impl Database {
    pub async fn create(server_url: &str) -> Database {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("random bytes");
        let name = format!("assent_test_{}", hex::encode(bytes));
        let created = execute(server_url.to_owned(), format!("CREATE DATABASE {name}")).await;
        created.unwrap_or_else(|e| panic!("cannot create a database on {server_url}: {e}"));
        let url = with_database(server_url, &name);
        Database { server_url: server_url.to_owned(), name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // The test's runtime cannot block on a future from inside; a thread of its own can.
        let server_url = self.server_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let runtime = runtime.map_err(|e| e.to_string())?;
            runtime.block_on(execute(server_url, sql)).map_err(|e| e.to_string())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}: {dropped:?}", self.name);
        }
    }
}

pub async fn open(database: &Database) -> Arc<AnyStore> {
    Arc::new(AnyStore::open(&database.url).await.expect("the PostgreSQL store opens"))
}

async fn execute(server_url: String, sql: String) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(&server_url, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    let executed = client.batch_execute(&sql).await;
    drop(client);
    let _ = connection.await;
    executed
}

/// `url` with its database name replaced.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}
