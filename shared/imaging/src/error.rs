use crate::ImageFormat;

/// Why an upload was refused. Messages are meant for the uploader; `code()` is for machines.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("the file is empty")]
    EmptyFile,

    /// `reason` is a whole sentence naming what was found and what is accepted.
    #[error("{reason}")]
    UnsupportedFormat { reason: String },

    #[error("the file is {bytes} bytes, over the limit of {limit} bytes")]
    FileTooLarge { bytes: u64, limit: u64 },

    #[error("{} is {width}x{height} = {pixels} pixels, over the limit of {limit}", format.label())]
    TooManyPixels { format: ImageFormat, width: u32, height: u32, pixels: u64, limit: u64 },

    #[error("{} is {width}x{height} pixels; neither side may exceed {limit}", format.label())]
    DimensionsTooLarge { format: ImageFormat, width: u32, height: u32, limit: u32 },

    /// Truncated or undecodable. `format` is `None` when the failure is not tied to the input.
    #[error("{} could not be decoded (damaged or truncated?): {detail}", format.map_or("the image", ImageFormat::label))]
    CorruptImage { format: Option<ImageFormat>, detail: String },

    #[error("the image could not be processed: the decoder failed unexpectedly ({detail})")]
    DecoderPanic { detail: String },

    /// An edit's parameters do not fit the image (e.g. a crop outside it). `detail` names the
    /// image's size and what was wrong; the same request will always fail.
    #[error("invalid edit: {detail}")]
    InvalidEdit { detail: String },

    /// A watermark logo that cannot be used (not a PNG with alpha, too large). The same file will
    /// always fail.
    #[error("invalid watermark logo: {detail}")]
    InvalidLogo { detail: String },

    /// Watermark settings out of range (margin, scale, opacity). The same settings will always fail.
    #[error("invalid watermark settings: {detail}")]
    InvalidWatermark { detail: String },
}

impl ImagingError {
    /// Stable identifiers: stored with rejected uploads and shown to clients, so never renamed.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyFile => "empty_file",
            Self::UnsupportedFormat { .. } => "unsupported_format",
            Self::FileTooLarge { .. } => "file_too_large",
            Self::TooManyPixels { .. } => "too_many_pixels",
            Self::DimensionsTooLarge { .. } => "dimensions_too_large",
            Self::CorruptImage { .. } => "corrupt_image",
            Self::DecoderPanic { .. } => "decoder_panic",
            Self::InvalidEdit { .. } => "invalid_edit",
            Self::InvalidLogo { .. } => "invalid_logo",
            Self::InvalidWatermark { .. } => "invalid_watermark",
        }
    }

    /// For callers that contain a panic themselves (e.g. a failed `spawn_blocking` join).
    pub fn from_panic(detail: impl Into<String>) -> Self {
        Self::DecoderPanic { detail: detail.into() }
    }

    pub(crate) fn unsupported(reason: impl Into<String>) -> Self {
        Self::UnsupportedFormat { reason: reason.into() }
    }

    /// Maps a codec error. A limit error here means the header passed our checks yet the decoder
    /// wanted more than they allow, i.e. the file is inconsistent with its own header.
    pub(crate) fn from_image(format: ImageFormat, e: image::ImageError) -> Self {
        use image::ImageError as E;
        match e {
            E::Unsupported(u) => Self::unsupported(format!(
                "this {} uses a feature that is not supported ({u}): re-save it as a baseline JPEG, PNG or WebP",
                format.label()
            )),
            E::Limits(l) => Self::CorruptImage {
                format: Some(format),
                detail: format!("the decoder needed more memory than the pixel limit allows ({l})"),
            },
            other => Self::CorruptImage { format: Some(format), detail: other.to_string() },
        }
    }
}
