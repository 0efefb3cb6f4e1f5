//! The sender -> receiver pipeline: wire messages, chunking with CRC-32, pure sender and
//! receiver state machines, the session store, channels, and the orchestrators that run them.

pub mod chunk;
pub mod receiver;
pub mod run;
pub mod sender;
pub mod session;
pub mod transport;
pub mod wire;
