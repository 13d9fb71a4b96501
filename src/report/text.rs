//! Text on pixels: captions and labels drawn with the bundled font.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

use crate::report::FONT;

/// The bundled font. Parsing the embedded file cannot fail unless the asset
/// itself is broken, which the report tests would catch.
fn font() -> FontRef<'static> {
    FontRef::try_from_slice(FONT).expect("the bundled DejaVu Sans parses")
}

/// Width in pixels of `text` at `size` pixels.
pub fn width(text: &str, size: f32) -> u32 {
    let font = font();
    let scaled = font.as_scaled(PxScale::from(size));
    let mut w = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            w += scaled.kern(p, id);
        }
        w += scaled.h_advance(id);
        prev = Some(id);
    }
    w.ceil() as u32
}

/// Draws `text` with its top-left corner at (`x`, `y`), `size` pixels high,
/// blending `color` over what is there. Text running off the image is cut.
pub fn draw(image: &mut RgbImage, text: &str, x: i32, y: i32, size: f32, color: [u8; 3]) {
    let font = font();
    let scaled = font.as_scaled(PxScale::from(size));
    let baseline = y as f32 + scaled.ascent();
    let mut pen = x as f32;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            pen += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(PxScale::from(size), ab_glyph::point(pen, baseline));
        pen += scaled.h_advance(id);
        prev = Some(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let px = bounds.min.x as i32 + gx as i32;
            let py = bounds.min.y as i32 + gy as i32;
            if px < 0 || py < 0 || px >= image.width() as i32 || py >= image.height() as i32 {
                return;
            }
            let a = coverage.clamp(0.0, 1.0);
            let Rgb(old) = *image.get_pixel(px as u32, py as u32);
            let mix = |o: u8, n: u8| (f32::from(o) * (1.0 - a) + f32::from(n) * a).round() as u8;
            image.put_pixel(
                px as u32,
                py as u32,
                Rgb([
                    mix(old[0], color[0]),
                    mix(old[1], color[1]),
                    mix(old[2], color[2]),
                ]),
            );
        });
    }
}

/// Draws `text` centred horizontally on `center_x`.
pub fn draw_centered(
    image: &mut RgbImage,
    text: &str,
    center_x: i32,
    y: i32,
    size: f32,
    color: [u8; 3],
) {
    let w = width(text, size) as i32;
    draw(image, text, center_x - w / 2, y, size, color);
}
