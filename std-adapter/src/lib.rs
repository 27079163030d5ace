//! The std adapter for [`qmp_core`]: real IO for the sans-IO QMP/QGA client.
//!
//! - [`Client`]: a QMP client, `Clone + Send + Sync`, over a Unix socket, TCP, a child
//!   process's stdio or any stream; typed, `serde_json` and hand-built commands,
//!   per-call deadlines and cancellation ([`Pending`]), fd passing, event listeners
//!   bounded in count and bytes ([`Subscription`]) and callbacks. [`GuestAgentClient`]
//!   speaks to `qemu-ga`.
//! - One client, two modes: [`Client`] is [`Connection<Blocking>`](Connection), whose
//!   waiting methods block the thread; `tokio::AsyncClient` (feature `tokio`) is
//!   `Connection<Async>`, whose waiting methods are `async fn`s. Everything else is the
//!   same code, and any [`Pending`] can be waited on or awaited.
//! - [`transport`]: one [`Transport`] type over Unix and TCP sockets, a child process's
//!   stdio, character devices and any `Read + Write` stream.
//! - [`fdpass`]: `SCM_RIGHTS` file-descriptor passing, attached to the bytes of the
//!   command that consumes the descriptors (`add-fd`, `getfd`).
//! - [`launch`]: start private `qemu-storage-daemon`, `qemu-system-x86_64` and `qemu-ga`
//!   processes and wait until their monitors accept connections.
//!
//! Under every client is one IO engine over one [`qmp_core::client::Client`]: the core
//! makes every protocol decision (ids, matching, deadlines, negotiation, guest-agent
//! sync); the engine moves bytes over non-blocking descriptors, reads the clock and
//! routes what the core reports. The caller that waits drives the socket itself while
//! nobody else does (a blocked thread, or over a Unix socket the task awaiting an async
//! call), so a call costs no thread switch; a background thread reads when no caller
//! does. Nothing the server does can stall it: deadlines fire on time and
//! `close()` returns at once even when the server stops reading.
//!
//! Every timeout takes any `Duration` (`Duration::MAX` included: too large to
//! represent as a deadline means none).
//!
//! # Blocking
//! ```no_run
//! use qmp_std::qmp_core::commands::QueryVersion;
//! use qmp_std::{Client, ConnectOptions};
//!
//! let client = Client::connect_unix("/tmp/qmp.sock", ConnectOptions::new())?;
//! let version = client.call(&QueryVersion, |v| v.qemu)?;
//! println!("QEMU {version}");
//! client.on_event("JOB_STATUS_CHANGE", |event| println!("{:?}", event.data_value()));
//! # Ok::<(), qmp_std::Error>(())
//! ```
//!
//! # Tokio (feature `tokio`)
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn demo() -> Result<(), qmp_std::Error> {
//! use qmp_std::qmp_core::commands::QueryVersion;
//! use qmp_std::tokio::AsyncClient;
//! use qmp_std::{CallOptions, ConnectOptions};
//!
//! let client = AsyncClient::connect_unix("/tmp/qmp.sock", ConnectOptions::new()).await?;
//! let reply = client.execute(&QueryVersion).await?;
//! println!("QEMU {}", reply.get()?.qemu);
//! // Any call can be sent first and awaited later.
//! let status = client.submit_value("query-status", &serde_json::Value::Null, CallOptions::new());
//! let events = client.subscribe_filtered(&["JOB_STATUS_CHANGE"]);
//! println!("{}", status.await?);
//! let event = events.recv().await?;
//! println!("{}", event.name());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use qmp_core;

mod client;
mod driver;
mod engine;
pub mod error;
pub mod events;
pub mod fdpass;
pub mod launch;
mod options;
pub mod reply;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod transport;

pub use client::{
    AgentConnection, Blocking, Canceller, Client, Connection, GuestAgentClient, Mode, Pending,
    WeakClient, CLOSE_CALLBACK_GRACE,
};
pub use error::{Error, ErrorClass};
pub use events::{CallbackId, Event, Subscription, SubscriptionCanceller};
pub use launch::{LaunchError, Launcher, QemuProcess, ServerKind};
pub use options::{
    CallOptions, ConnectOptions, ServerInfo, Timeout, DEFAULT_EVENT_QUEUE_BYTES, MAX_IN_FLIGHT,
};
pub use qmp_core::client::{CloseReason, Stats};
pub use reply::{RawReply, Reply};
pub use transport::{Transport, TransportKind};
