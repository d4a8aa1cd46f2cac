//! A sans-I/O SMTP client.
#![forbid(unsafe_code)]

pub mod address;
pub mod auth;
pub mod error;
pub mod reply;
pub mod stage;
pub mod transaction;

pub use address::Address;
pub use auth::{Credentials, Mechanism, Secret};
pub use error::{Error, InputField};
pub use reply::{EnhancedCode, Reply, ReplyCode};
pub use stage::Stage;
