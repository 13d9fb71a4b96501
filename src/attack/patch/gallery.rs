//! Pictures of a patch: the patch itself, enlarged, and a gallery of images
//! with a trained patch and with a comparison patch (noise) pasted on.

use crate::attack::patch::{apply, Patch, Placement};
use crate::data::images::to_rgb_image;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{infer, Classifier, Model};
use crate::report::gallery::{Gallery, Tile};

/// The patch as people see it on an image (black outside its shape),
/// `zoom` screen pixels per patch pixel.
pub fn zoomed(patch: &Patch, zoom: u32) -> image::RgbImage {
    let small = to_rgb_image(
        &patch.visible(),
        [patch.channels, patch.height, patch.width],
    );
    image::imageops::resize(
        &small,
        patch.width as u32 * zoom,
        patch.height as u32 * zoom,
        image::imageops::FilterType::Nearest,
    )
}

/// A gallery of the first `rows` of `images` whose label is not `target`:
/// the clean image, the image with `patches[0]` pasted on and the image with
/// `patches[1]` pasted on (the same placement for both, drawn from
/// `placement` with `seed`), each captioned with the model's class and
/// confidence; the first column also names the label.
#[allow(clippy::too_many_arguments)]
pub fn patch_gallery(
    gpu: &Gpu,
    model: &Model,
    images: &[f32],
    labels: &[u32],
    target: u32,
    patches: [(&str, &Patch); 2],
    placement: &Placement,
    seed: u64,
    rows: usize,
) -> Result<Gallery> {
    let d = model.input_len();
    if images.len() != labels.len() * d {
        return Err(Error::Shape {
            what: "patch gallery images".into(),
            expected: format!("{} labels x {d} values", labels.len()),
            got: format!("{} values", images.len()),
        });
    }
    let shown: Vec<usize> = (0..labels.len())
        .filter(|&i| labels[i] != target)
        .take(rows)
        .collect();
    let clean: Vec<f32> = shown
        .iter()
        .flat_map(|&i| images[i * d..(i + 1) * d].to_vec())
        .collect();
    let first = apply(gpu, model, patches[0].1, &clean, placement, seed)?;
    let second = apply(gpu, model, patches[1].1, &clean, placement, seed)?;

    let classifier = Classifier::new(gpu, model, shown.len().max(1))?;
    let k = model.num_classes();
    let caption = |probs: &[f32], row: usize| {
        let p = &probs[row * k..(row + 1) * k];
        let c = infer::argmax(p);
        format!("{} ({:.0}%)", model.class_name(c), 100.0 * p[c])
    };
    let probs = [
        classifier.probabilities(&clean)?,
        classifier.probabilities(&first.images)?,
        classifier.probabilities(&second.images)?,
    ];
    let mut gallery = Gallery::new(vec![
        "clean".into(),
        patches[0].0.into(),
        patches[1].0.into(),
    ]);
    for (row, &i) in shown.iter().enumerate() {
        let slice = |x: &[f32]| x[row * d..(row + 1) * d].to_vec();
        let label = model.class_name(labels[i] as usize);
        gallery.push_row(vec![
            Tile::image(
                &slice(&clean),
                model.input_shape,
                format!("label {label} | {}", caption(&probs[0], row)),
            ),
            Tile::image(
                &slice(&first.images),
                model.input_shape,
                caption(&probs[1], row),
            ),
            Tile::image(
                &slice(&second.images),
                model.input_shape,
                caption(&probs[2], row),
            ),
        ]);
    }
    Ok(gallery)
}
