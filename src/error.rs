//! The library's error type. Every variant names what was wrong and what was expected,
//! so the binary can print it as-is without a wgpu validation dump.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HebbError {
    #[error(
        "no GPU adapter found{filter}. On a machine without a GPU install Mesa's software Vulkan \
         driver (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`), or check --backend/--adapter \
         and the WGPU_BACKEND / WGPU_ADAPTER_NAME variables"
    )]
    NoAdapter { filter: String },

    #[error("no adapter matches --adapter {wanted:?}; available: {available}")]
    AdapterNotFound { wanted: String, available: String },

    #[error("unknown backend {0:?}: expected one of vulkan, metal, dx12, gl")]
    UnknownBackend(String),

    /// A setting that names no valid choice (an option or environment variable).
    #[error("{0}")]
    Config(String),

    #[error("could not open a device on adapter {adapter:?}: {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },

    #[error("shader {shader}: {message}")]
    Shader { shader: String, message: String },

    #[error("tensor {tensor}: {message}")]
    Shape { tensor: String, message: String },

    #[error(
        "tensor {tensor} needs {bytes} bytes in one storage binding, but this adapter allows at most \
         {limit} (max_storage_buffer_binding_size); split the work or use a smaller batch"
    )]
    TooLargeForBinding {
        tensor: String,
        bytes: u64,
        limit: u64,
    },

    #[error(
        "tensor {tensor} needs a {bytes}-byte buffer, but this adapter allows at most {limit} (max_buffer_size)"
    )]
    TooLargeForBuffer {
        tensor: String,
        bytes: u64,
        limit: u64,
    },

    #[error("{kernel}: {message}")]
    Launch { kernel: String, message: String },

    /// Training diverged: weights or the loss became NaN/Inf. `stage` names the layer or the
    /// classifier; the message says when, and which checkpoint was kept.
    #[error("{stage}: {message}")]
    Divergence { stage: String, message: String },

    /// A dataset file or folder that cannot be read as the recipe's dataset.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),

    /// A recipe that does not describe a valid network or protocol.
    #[error(transparent)]
    Recipe(#[from] crate::nn::recipe::RecipeError),

    #[error("{what} needs the adapter feature {feature}, which {adapter:?} does not offer")]
    MissingFeature {
        what: String,
        feature: &'static str,
        adapter: String,
    },

    #[error("GPU error during {during}: {message}")]
    Gpu { during: String, message: String },

    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = HebbError> = std::result::Result<T, E>;
