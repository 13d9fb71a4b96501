//! The library's error type.
//!
//! Every fallible public function returns [`Result<T>`]. Each variant names the
//! value that was wrong and what was expected, so that a user can fix the input
//! without reading the source.

use std::path::PathBuf;

/// Everything that can go wrong in advgpu, grouped by the step that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No GPU adapter could be found, or none matched the requested name.
    #[error(
        "no GPU adapter found{}: install a Vulkan, Metal or DX12 driver \
         (on headless Linux, Mesa's software Vulkan driver lavapipe: \
         `apt-get install mesa-vulkan-drivers`){}",
        .wanted.as_ref().map(|w| format!(" matching {w:?}")).unwrap_or_default(),
        if .available.is_empty() { String::new() } else { format!("; adapters present: {}", .available.join(", ")) }
    )]
    NoAdapter {
        /// The `--adapter` substring that was asked for, if any.
        wanted: Option<String>,
        /// Names of the adapters that do exist.
        available: Vec<String>,
    },

    /// The adapter refused to create a device.
    #[error("could not create a device on adapter {adapter:?}: {source}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's reason.
        source: wgpu::RequestDeviceError,
    },

    /// A GPU operation failed: a shader that did not compile, a lost device, a
    /// failed buffer mapping.
    #[error("GPU error during {during}: {message}")]
    Gpu {
        /// What the library was doing.
        during: String,
        /// The driver's or wgpu's message.
        message: String,
    },

    /// A buffer would be larger than the device allows.
    #[error(
        "{what} needs a buffer of {needed} bytes, but the device allows at most {limit} bytes \
         per storage binding; use a smaller batch"
    )]
    BufferTooLarge {
        /// Which tensor the buffer was for.
        what: String,
        /// Bytes asked for.
        needed: u64,
        /// The device limit.
        limit: u64,
    },

    /// A model file could not be read or failed validation.
    #[error("model {path}: {reason}")]
    Model {
        /// The file, or `<memory>` for bytes handed in directly.
        path: String,
        /// What is wrong with it, naming the tensor or layer and the expected value.
        reason: String,
    },

    /// Two shapes that must agree do not.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    Shape {
        /// What was being checked.
        what: String,
        /// The shape that was required.
        expected: String,
        /// The shape that was given.
        got: String,
    },

    /// A parameter is outside its allowed range.
    #[error("invalid {name} = {value}: expected {expected}")]
    InvalidParameter {
        /// The parameter's name, as the user wrote it (`eps`, `steps`, ...).
        name: &'static str,
        /// The value given.
        value: String,
        /// The allowed range.
        expected: String,
    },

    /// A data file (IDX digits, an image) could not be read.
    #[error("{path}: {reason}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An I/O error with the file it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A picture (plot, gallery) could not be drawn.
    #[error("{path}: could not draw the picture: {reason}")]
    Render {
        /// The file it was for.
        path: PathBuf,
        /// The drawing library's message.
        reason: String,
    },

    /// An image could not be decoded or encoded.
    #[error("{path}: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// The image crate's error.
        source: image::ImageError,
    },
}

/// `Result` with the library's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for a model-file error.
    pub(crate) fn model(path: &str, reason: impl Into<String>) -> Self {
        Error::Model {
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for a GPU error.
    pub(crate) fn gpu(during: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Gpu {
            during: during.into(),
            message: message.to_string(),
        }
    }

    /// Shorthand for an out-of-range parameter.
    pub(crate) fn param(
        name: &'static str,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Error::InvalidParameter {
            name,
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}
