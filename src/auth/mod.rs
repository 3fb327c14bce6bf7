//! Client-side authentication to the upstream server: SCRAM-SHA-256 with
//! optional `tls-server-end-point` channel binding, and the messages the
//! proxy exchanges when it logs in on a client's behalf.

pub mod channel_binding;
pub mod messages;
pub mod password;
pub mod scram;

pub use channel_binding::tls_server_end_point;
pub use password::Password;
pub use scram::{ChannelBinding, ScramClient, ScramError, ServerSignature};
