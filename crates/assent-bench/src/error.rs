//! What can stop a bench: the server, the network, an unexpected answer, or a broken
//! invariant.

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("server: {0}")]
    Server(String),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{path}: request failed: {detail}")]
    Http { path: String, detail: String },
    #[error("{path}: HTTP {status}: {body}")]
    Answer { path: String, status: u16, body: String },
    #[error("invariant violated: {0}")]
    Violation(String),
}

impl BenchError {
    pub fn is_violation(&self) -> bool {
        matches!(self, BenchError::Violation(_))
    }
}
