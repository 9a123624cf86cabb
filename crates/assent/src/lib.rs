//! The Assent server: the HTTP API, the command line, and the process around them. The
//! rules live in `assent-core` and the data in `assent-store`; this crate wires them to the
//! outside world.

pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod engine;
pub mod http;
pub mod outbound;
pub mod serve;
pub mod smtp;
