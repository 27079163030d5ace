//! Character devices: `chardev-add`, `chardev-remove`, `query-chardev`.
//!
//! `chardev-remove`, `query-chardev` and their types are the generated ones of
//! [`crate::qapi`] (QAPI module `char`), re-exported here; [`ChardevAdd`] and its backend
//! builders stay hand-written (a backend as a plain struct, `ChardevSocket::server`, ...),
//! returning the generated [`ChardevReturn`].

use crate::json::{DecodeError, RawJson};

use super::{Command, FromRawJson};

/// Members every chardev backend accepts (QAPI `ChardevCommon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChardevCommon<'a> {
    /// Also write everything received to this file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logfile: Option<&'a str>,
    /// Append to `logfile` instead of truncating it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logappend: Option<bool>,
}

/// A `file` backend (QAPI `ChardevFile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChardevFile<'a> {
    /// Also write everything received to this file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logfile: Option<&'a str>,
    /// Append to `logfile` instead of truncating it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logappend: Option<bool>,
    /// The file to read input from.
    #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
    pub input: Option<&'a str>,
    /// The file to write output to.
    pub out: &'a str,
    /// Append to `out` instead of truncating it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
}

/// A `socket` backend (QAPI `ChardevSocket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct ChardevSocket<'a> {
    /// Also write everything received to this file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logfile: Option<&'a str>,
    /// Append to `logfile` instead of truncating it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logappend: Option<bool>,
    /// Where to listen or connect.
    pub addr: SocketAddressLegacy<'a>,
    /// The id of a `tls-creds-*` object to secure the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_creds: Option<&'a str>,
    /// Listen (true, the default) or connect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<bool>,
    /// When listening, block until a client connects (default true: set `false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
    /// Disable Nagle's algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodelay: Option<bool>,
    /// Speak telnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telnet: Option<bool>,
    /// Speak WebSocket (server only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<bool>,
    /// When connecting, retry after this many milliseconds once disconnected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_ms: Option<u64>,
}

impl<'a> ChardevSocket<'a> {
    /// A socket on `addr` with QEMU's defaults (server, waiting for a client).
    pub fn new(addr: SocketAddressLegacy<'a>) -> Self {
        ChardevSocket {
            logfile: None,
            logappend: None,
            addr,
            tls_creds: None,
            server: None,
            wait: None,
            nodelay: None,
            telnet: None,
            websocket: None,
            reconnect_ms: None,
        }
    }

    /// A listening socket on `addr` that does not wait for a client.
    pub fn server(addr: SocketAddressLegacy<'a>) -> Self {
        ChardevSocket {
            server: Some(true),
            wait: Some(false),
            ..ChardevSocket::new(addr)
        }
    }

    /// A socket that connects to `addr`.
    pub fn client(addr: SocketAddressLegacy<'a>) -> Self {
        ChardevSocket {
            server: Some(false),
            ..ChardevSocket::new(addr)
        }
    }
}

/// A socket address in the older `{"type": ..., "data": {...}}` form that `chardev-add`
/// uses (QAPI `SocketAddressLegacy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum SocketAddressLegacy<'a> {
    /// TCP.
    Inet(InetSocketAddress<'a>),
    /// A Unix domain socket.
    Unix(UnixSocketAddress<'a>),
    /// AF_VSOCK.
    Vsock(VsockSocketAddress<'a>),
}

/// A TCP address (QAPI `InetSocketAddress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct InetSocketAddress<'a> {
    /// Host name or address.
    pub host: &'a str,
    /// Port number or service name (a string on the wire).
    pub port: &'a str,
    /// Restrict to IPv4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<bool>,
    /// Restrict to IPv6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
    /// Enable TCP keep-alive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<bool>,
}

/// A Unix domain socket address (QAPI `UnixSocketAddress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnixSocketAddress<'a> {
    /// The socket's path (or abstract name).
    pub path: &'a str,
    /// Use the Linux abstract namespace.
    #[serde(rename = "abstract", skip_serializing_if = "Option::is_none")]
    pub is_abstract: Option<bool>,
    /// Abstract namespace only: do not pad the name with zeroes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tight: Option<bool>,
}

/// An AF_VSOCK address (QAPI `VsockSocketAddress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VsockSocketAddress<'a> {
    /// Context id, as a decimal string.
    pub cid: &'a str,
    /// Port, as a decimal string.
    pub port: &'a str,
}

/// A `ringbuf` backend (QAPI `ChardevRingbuf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChardevRingbuf<'a> {
    /// Also write everything received to this file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logfile: Option<&'a str>,
    /// Append to `logfile` instead of truncating it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logappend: Option<bool>,
    /// Capacity in bytes, a power of two (default 65536).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The typed chardev backends (QAPI `ChardevBackend`, tagged `type` with the options
/// under `data`). Other backends go through [`ChardevAdd::with_backend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum ChardevBackend<'a> {
    /// A host file.
    File(ChardevFile<'a>),
    /// A socket.
    Socket(ChardevSocket<'a>),
    /// A new pseudo-terminal; its path comes back in [`ChardevReturn::pty`].
    Pty(ChardevCommon<'a>),
    /// Discards output, never has input.
    Null(ChardevCommon<'a>),
    /// A memory ring buffer, readable with `ringbuf-read`.
    Ringbuf(ChardevRingbuf<'a>),
}

/// `chardev-add`: creates a character device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChardevAdd<'a, B = ChardevBackend<'a>> {
    /// The chardev's id.
    pub id: &'a str,
    /// Its backend: a [`ChardevBackend`] or any value that serializes to a QAPI
    /// `ChardevBackend` object.
    pub backend: B,
}

impl<'a> ChardevAdd<'a> {
    /// A chardev `id` with a typed backend.
    pub fn new(id: &'a str, backend: ChardevBackend<'a>) -> Self {
        ChardevAdd { id, backend }
    }
}

impl<'a, B: serde::Serialize> ChardevAdd<'a, B> {
    /// A chardev `id` with a backend of the caller's own type.
    pub fn with_backend(id: &'a str, backend: B) -> Self {
        ChardevAdd { id, backend }
    }
}

impl<B: serde::Serialize> Command for ChardevAdd<'_, B> {
    const NAME: &'static str = "chardev-add";
    type Arguments = Self;
    type Response<'r> = ChardevReturn<'r>;

    fn arguments(&self) -> Option<&Self> {
        Some(self)
    }

    fn decode_response(raw: RawJson<'_>) -> Result<ChardevReturn<'_>, DecodeError> {
        FromRawJson::from_raw_json(raw)
    }
}

pub use crate::qapi::qmp::{ChardevInfo, ChardevRemove, ChardevReturn, QueryChardev};
