//! Block devices and nodes: queries, `blockdev-add`/`-del`/`-create`, and the commands that
//! start block jobs (mirror, backup, stream, commit). The jobs themselves are managed
//! with the commands in [`jobs`](super::jobs).
//!
//! `blockdev-del`, `block_resize` and the job starters (`blockdev-mirror`,
//! `blockdev-backup` as [`BlockdevBackupCommand`] around the schema's [`BlockdevBackup`],
//! `block-stream`, `block-commit`) with their enums ([`MirrorSyncMode`],
//! [`BlockdevOnError`], [`MirrorCopyMode`], [`BitmapSyncMode`]) are the generated types of
//! [`crate::qapi`], re-exported; their `new` constructors (and [`BlockResize::node`]) are
//! kept on them. The queries are generated too: [`QueryBlock`] returning [`BlockInfo`]s,
//! [`QueryNamedBlockNodes`] returning [`BlockDeviceInfo`]s (with [`ImageInfo`] and
//! [`BlockdevCacheInfo`]), [`QueryBlockstats`] returning [`BlockStats`] (with
//! [`BlockDeviceStats`]); sizes and counters are QAPI `int`s (`i64`), enum-valued members
//! the schema's enums (`detect_zeroes`, `io_status`), and every member is decoded
//! (throttling limits, dirty bitmaps, snapshots, the backing chain, latency histograms).
//! Their all-optional arguments are omitted when unset.
//!
//! Hand-written, because they add something: `blockdev-add` and `blockdev-create` with
//! their per-driver option builders. The generated `BlockdevOptions` (in
//! [`crate::qapi`]) is a union of 47 drivers whose base has eight optional members
//! beside the required `driver`, so it has no `Default` and a caller spells out every
//! base member; the builders read `BlockdevAdd::new(BlockdevOptionsNull::new("null0",
//! size))`, name other nodes with a plain `&str`, and [`BlockdevAdd::with_options`] /
//! [`BlockdevCreate::with_options`] send any serializable options (a driver or member
//! the builders do not type, or one a newer QEMU adds). Their members use the generated
//! types ([`BlockdevDiscardOptions`], [`BlockdevDetectZeroesOptions`], [`PreallocMode`],
//! [`BlockdevCacheOptions`]), re-exported here.

use crate::json::{DecodeError, RawJson};

use super::macros::empty;
use super::{Command, Empty};

pub use crate::qapi::qmp::{
    BitmapSyncMode, BlockCommit, BlockDeviceInfo, BlockDeviceStats, BlockInfo, BlockResize,
    BlockStats, BlockStream, BlockdevBackup, BlockdevBackupCommand, BlockdevCacheInfo,
    BlockdevCacheOptions, BlockdevDel, BlockdevDetectZeroesOptions, BlockdevDiscardOptions,
    BlockdevMirror, BlockdevOnError, ImageInfo, MirrorCopyMode, MirrorSyncMode, PreallocMode,
    QueryBlock, QueryBlockstats, QueryNamedBlockNodes,
};

// ---------------------------------------------------------------------------------------
// blockdev-add

/// Defines a `BlockdevOptions*` struct: the members every driver shares (QAPI
/// `BlockdevOptions` base), then the driver's own.
macro_rules! blockdev_options {
    (
        $(#[$attr:meta])*
        pub struct $ty:ident<'a> {
            $(
                $(#[$field_attr:meta])*
                pub $field:ident: $field_ty:ty,
            )*
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub struct $ty<'a> {
            /// `node-name`: the name other commands use for this node.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub node_name: Option<&'a str>,
            /// `discard`: how discard requests are handled.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub discard: Option<BlockdevDiscardOptions<'a>>,
            /// `cache`: host cache options.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub cache: Option<BlockdevCacheOptions>,
            /// `read-only`: open the node read-only.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub read_only: Option<bool>,
            /// `auto-read-only`: fall back to read-only when write access is denied.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub auto_read_only: Option<bool>,
            /// `force-share`: allow sharing with other writers (needs `read-only`).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub force_share: Option<bool>,
            /// `detect-zeroes`: detect writes of zeroes.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub detect_zeroes: Option<BlockdevDetectZeroesOptions<'a>>,
            $(
                $(#[$field_attr])*
                pub $field: $field_ty,
            )*
        }
    };
}

blockdev_options! {
    /// Options of the `file` protocol driver (QAPI `BlockdevOptionsFile`).
    pub struct BlockdevOptionsFile<'a> {
        /// Path of the host file.
        pub filename: &'a str,
        /// `aio`: `threads` (default), `native` or `io_uring`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub aio: Option<&'a str>,
        /// `locking`: `auto` (default), `on` or `off`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub locking: Option<&'a str>,
    }
}

blockdev_options! {
    /// Options of the `null-co` and `null-aio` drivers (QAPI `BlockdevOptionsNull`).
    pub struct BlockdevOptionsNull<'a> {
        /// Size in bytes (default 2^30).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub size: Option<u64>,
        /// Simulated latency per request, in nanoseconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub latency_ns: Option<u64>,
        /// Whether reads return zeroes (otherwise the buffer is left as is).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub read_zeroes: Option<bool>,
    }
}

blockdev_options! {
    /// Options of the `raw` format driver (QAPI `BlockdevOptionsRaw`).
    pub struct BlockdevOptionsRaw<'a> {
        /// The node holding the data, by node name.
        pub file: &'a str,
        /// Start of the exposed range in `file`, in bytes.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub offset: Option<u64>,
        /// Length of the exposed range, in bytes.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub size: Option<u64>,
    }
}

blockdev_options! {
    /// Options of the `qcow2` format driver (QAPI `BlockdevOptionsQcow2`; the encryption
    /// and overlap-check members are left to [`BlockdevAdd::with_options`]).
    pub struct BlockdevOptionsQcow2<'a> {
        /// The node holding the image, by node name.
        pub file: &'a str,
        /// The backing node by name; `Some(None)` sends `null` (no backing file at all);
        /// absent opens the backing file named in the image.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub backing: Option<Option<&'a str>>,
        /// `lazy-refcounts`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub lazy_refcounts: Option<bool>,
        /// `pass-discard-request`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pass_discard_request: Option<bool>,
        /// `pass-discard-snapshot`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pass_discard_snapshot: Option<bool>,
        /// `pass-discard-other`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pass_discard_other: Option<bool>,
        /// `discard-no-unref`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub discard_no_unref: Option<bool>,
        /// `cache-size`: the combined L2 and refcount cache size, in bytes.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cache_size: Option<u64>,
        /// `l2-cache-size`, in bytes.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub l2_cache_size: Option<u64>,
        /// `l2-cache-entry-size`, in bytes.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub l2_cache_entry_size: Option<u64>,
        /// `refcount-cache-size`, in bytes.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub refcount_cache_size: Option<u64>,
        /// `cache-clean-interval`, in seconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cache_clean_interval: Option<u64>,
        /// `data-file`: the external data file node, by node name.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub data_file: Option<&'a str>,
    }
}

impl<'a> BlockdevOptionsFile<'a> {
    /// A `file` node named `node_name` over the host file `filename`.
    pub fn new(node_name: &'a str, filename: &'a str) -> Self {
        BlockdevOptionsFile {
            node_name: Some(node_name),
            filename,
            ..Default::default()
        }
    }
}

impl<'a> BlockdevOptionsNull<'a> {
    /// A null node named `node_name` of `size` bytes.
    pub fn new(node_name: &'a str, size: u64) -> Self {
        BlockdevOptionsNull {
            node_name: Some(node_name),
            size: Some(size),
            ..Default::default()
        }
    }
}

impl<'a> BlockdevOptionsRaw<'a> {
    /// A `raw` node named `node_name` over the node `file`.
    pub fn new(node_name: &'a str, file: &'a str) -> Self {
        BlockdevOptionsRaw {
            node_name: Some(node_name),
            file,
            ..Default::default()
        }
    }
}

impl<'a> BlockdevOptionsQcow2<'a> {
    /// A `qcow2` node named `node_name` over the node `file`.
    pub fn new(node_name: &'a str, file: &'a str) -> Self {
        BlockdevOptionsQcow2 {
            node_name: Some(node_name),
            file,
            ..Default::default()
        }
    }
}

/// The typed `blockdev-add` arguments for the drivers this crate knows, tagged with
/// `driver` (QAPI `BlockdevOptions`). Other drivers go through
/// [`BlockdevAdd::with_options`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "driver")]
pub enum BlockdevOptions<'a> {
    /// `file`: a host file.
    #[serde(rename = "file")]
    File(BlockdevOptionsFile<'a>),
    /// `null-co`: discards writes, reads zeroes (or garbage); for tests.
    #[serde(rename = "null-co")]
    NullCo(BlockdevOptionsNull<'a>),
    /// `null-aio`: like `null-co`, completing requests through AIO.
    #[serde(rename = "null-aio")]
    NullAio(BlockdevOptionsNull<'a>),
    /// `raw`: the raw format over another node.
    #[serde(rename = "raw")]
    Raw(BlockdevOptionsRaw<'a>),
    /// `qcow2`: the qcow2 format over another node.
    #[serde(rename = "qcow2")]
    Qcow2(BlockdevOptionsQcow2<'a>),
}

impl<'a> From<BlockdevOptionsFile<'a>> for BlockdevOptions<'a> {
    fn from(options: BlockdevOptionsFile<'a>) -> Self {
        BlockdevOptions::File(options)
    }
}

impl<'a> From<BlockdevOptionsRaw<'a>> for BlockdevOptions<'a> {
    fn from(options: BlockdevOptionsRaw<'a>) -> Self {
        BlockdevOptions::Raw(options)
    }
}

impl<'a> From<BlockdevOptionsQcow2<'a>> for BlockdevOptions<'a> {
    fn from(options: BlockdevOptionsQcow2<'a>) -> Self {
        BlockdevOptions::Qcow2(options)
    }
}

/// `blockdev-add`: creates a block node. The arguments are the options themselves: a
/// [`BlockdevOptions`] or, for anything else, any serializable value that produces the
/// QAPI `BlockdevOptions` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BlockdevAdd<O> {
    /// The node's options (they are the command's arguments).
    pub options: O,
}

impl<'a> BlockdevAdd<BlockdevOptions<'a>> {
    /// Adds a node with typed options.
    pub fn new(options: impl Into<BlockdevOptions<'a>>) -> Self {
        BlockdevAdd {
            options: options.into(),
        }
    }
}

impl<O: serde::Serialize> BlockdevAdd<O> {
    /// Adds a node with options of the caller's own type (for drivers or members this
    /// crate does not type); `options` must serialize to a `BlockdevOptions` object,
    /// `driver` included. References work too: `BlockdevAdd::with_options(&my_options)`.
    pub fn with_options(options: O) -> Self {
        BlockdevAdd { options }
    }
}

impl<O: serde::Serialize> Command for BlockdevAdd<O> {
    const NAME: &'static str = "blockdev-add";
    type Arguments = O;
    type Response<'r> = Empty;

    fn arguments(&self) -> Option<&O> {
        Some(&self.options)
    }

    fn decode_response(raw: RawJson<'_>) -> Result<Empty, DecodeError> {
        empty(raw)
    }
}

// ---------------------------------------------------------------------------------------
// blockdev-create

/// Creation options of a host file (QAPI `BlockdevCreateOptionsFile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevCreateOptionsFile<'a> {
    /// Path of the file to create.
    pub filename: &'a str,
    /// Size in bytes.
    pub size: u64,
    /// Preallocation mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preallocation: Option<PreallocMode<'a>>,
    /// Disable copy-on-write (btrfs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nocow: Option<bool>,
    /// Extent size hint, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extent_size_hint: Option<u64>,
}

/// Creation options of a qcow2 image (QAPI `BlockdevCreateOptionsQcow2`; encryption is
/// left to [`BlockdevCreate::with_options`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevCreateOptionsQcow2<'a> {
    /// The node to write the image to, by node name.
    pub file: &'a str,
    /// An external data file node, by node name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_file: Option<&'a str>,
    /// Whether the external data file is valid as a raw image too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_file_raw: Option<bool>,
    /// Use extended L2 entries (subclusters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_l2: Option<bool>,
    /// Virtual size in bytes.
    pub size: u64,
    /// `v2` or `v3` (default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'a str>,
    /// The backing file name written into the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<&'a str>,
    /// The backing file's format (a driver name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_fmt: Option<&'a str>,
    /// Cluster size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_size: Option<u64>,
    /// Preallocation mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preallocation: Option<PreallocMode<'a>>,
    /// Lazy refcounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lazy_refcounts: Option<bool>,
    /// Width of a refcount entry in bits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refcount_bits: Option<u64>,
    /// `zlib` or `zstd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_type: Option<&'a str>,
}

/// The typed `blockdev-create` options, tagged with `driver` (QAPI
/// `BlockdevCreateOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(tag = "driver")]
pub enum BlockdevCreateOptions<'a> {
    /// Creates a host file.
    #[serde(rename = "file")]
    File(BlockdevCreateOptionsFile<'a>),
    /// Formats a node as qcow2.
    #[serde(rename = "qcow2")]
    Qcow2(BlockdevCreateOptionsQcow2<'a>),
}

impl<'a> From<BlockdevCreateOptionsFile<'a>> for BlockdevCreateOptions<'a> {
    fn from(options: BlockdevCreateOptionsFile<'a>) -> Self {
        BlockdevCreateOptions::File(options)
    }
}

impl<'a> From<BlockdevCreateOptionsQcow2<'a>> for BlockdevCreateOptions<'a> {
    fn from(options: BlockdevCreateOptionsQcow2<'a>) -> Self {
        BlockdevCreateOptions::Qcow2(options)
    }
}

/// `blockdev-create`: starts a job that creates an image. The job reports through
/// `JOB_STATUS_CHANGE` events and must be dismissed with
/// [`JobDismiss`](super::JobDismiss) once concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevCreate<'a, O> {
    /// The new job's id.
    pub job_id: &'a str,
    /// What to create: a [`BlockdevCreateOptions`] or any value that serializes to a
    /// QAPI `BlockdevCreateOptions` object.
    pub options: O,
}

impl<'a> BlockdevCreate<'a, BlockdevCreateOptions<'a>> {
    /// Creates an image with typed options.
    pub fn new(job_id: &'a str, options: impl Into<BlockdevCreateOptions<'a>>) -> Self {
        BlockdevCreate {
            job_id,
            options: options.into(),
        }
    }
}

impl<'a, O: serde::Serialize> BlockdevCreate<'a, O> {
    /// Creates an image with options of the caller's own type.
    pub fn with_options(job_id: &'a str, options: O) -> Self {
        BlockdevCreate { job_id, options }
    }
}

impl<O: serde::Serialize> Command for BlockdevCreate<'_, O> {
    const NAME: &'static str = "blockdev-create";
    type Arguments = Self;
    type Response<'r> = Empty;

    fn arguments(&self) -> Option<&Self> {
        Some(self)
    }

    fn decode_response(raw: RawJson<'_>) -> Result<Empty, DecodeError> {
        empty(raw)
    }
}

// ---------------------------------------------------------------------------------------
// Block jobs' starters.

impl<'a> BlockdevMirror<'a> {
    /// Mirrors `device` to `target` with the given sync mode, under job id `job_id`.
    pub fn new(
        job_id: &'a str,
        device: &'a str,
        target: &'a str,
        sync: MirrorSyncMode<'a>,
    ) -> Self {
        BlockdevMirror {
            job_id: Some(job_id),
            device,
            target,
            replaces: None,
            sync,
            speed: None,
            granularity: None,
            buf_size: None,
            on_source_error: None,
            on_target_error: None,
            filter_node_name: None,
            copy_mode: None,
            auto_finalize: None,
            auto_dismiss: None,
        }
    }
}

impl<'a> BlockdevBackup<'a> {
    /// Backs `device` up to `target` with the given sync mode, under job id `job_id`.
    pub fn new(
        job_id: &'a str,
        device: &'a str,
        target: &'a str,
        sync: MirrorSyncMode<'a>,
    ) -> Self {
        BlockdevBackup {
            job_id: Some(job_id),
            device,
            target,
            sync,
            speed: None,
            bitmap: None,
            bitmap_mode: None,
            compress: None,
            on_source_error: None,
            on_target_error: None,
            auto_finalize: None,
            auto_dismiss: None,
            filter_node_name: None,
            discard_source: None,
            x_perf: None,
        }
    }
}

impl<'a> BlockStream<'a> {
    /// Streams into `device` from its whole backing chain, under job id `job_id`.
    pub fn new(job_id: &'a str, device: &'a str) -> Self {
        BlockStream {
            job_id: Some(job_id),
            device,
            base: None,
            base_node: None,
            backing_file: None,
            backing_mask_protocol: None,
            bottom: None,
            speed: None,
            on_error: None,
            filter_node_name: None,
            auto_finalize: None,
            auto_dismiss: None,
        }
    }
}

impl<'a> BlockCommit<'a> {
    /// Commits `device`'s active layer into its backing file, under job id `job_id`.
    pub fn new(job_id: &'a str, device: &'a str) -> Self {
        BlockCommit {
            job_id: Some(job_id),
            device,
            base_node: None,
            base: None,
            top_node: None,
            top: None,
            backing_file: None,
            backing_mask_protocol: None,
            speed: None,
            on_error: None,
            filter_node_name: None,
            auto_finalize: None,
            auto_dismiss: None,
        }
    }
}

impl<'a> BlockResize<'a> {
    /// Resizes the node `node_name` to `size` bytes.
    pub fn node(node_name: &'a str, size: i64) -> Self {
        BlockResize {
            device: None,
            node_name: Some(node_name),
            size,
        }
    }
}
