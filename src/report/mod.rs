//! Pictures for people: image galleries with captions, heatmaps with a
//! colour legend, and line plots.
//!
//! Everything renders into an [`image::RgbImage`] and is written as PNG. Text
//! is drawn with the bundled DejaVu Sans font (`assets/fonts`, with its
//! licence), so the output looks the same on every machine and needs no
//! system fonts.

pub mod gallery;
pub mod plot;
pub mod text;

use std::path::Path;

use crate::error::{Error, Result};

/// DejaVu Sans, compiled into the crate (licence: `assets/fonts/DejaVu-LICENSE.txt`).
pub const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Writes an RGB image as PNG, creating no folders.
pub fn save_rgb(image: &image::RgbImage, path: &Path) -> Result<()> {
    image.save(path).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })
}
