//! The saliency gallery: images side by side with their maps.

use crate::error::{Error, Result};
use crate::explain::{magnitude, Attributions};
use crate::nn::infer::{argmax, softmax};
use crate::nn::Model;
use crate::report::gallery::{Gallery, Tile, SALIENCY_LEGEND};

/// A gallery of the first `rows` images: each image captioned with its label
/// (when given) and the model's prediction, then one map per entry of
/// `maps` (a title and the attributions of the same images), captioned with
/// the class explained and, for Integrated Gradients, the sum of the
/// attributions next to `f(x) - f(b)` (else the largest `|a|`).
pub fn saliency_gallery(
    model: &Model,
    x: &[f32],
    labels: Option<&[u8]>,
    maps: &[(&str, &Attributions)],
    rows: usize,
) -> Result<Gallery> {
    let shape = model.input_shape;
    let d = model.input_len();
    let k = model.num_classes();
    let n = x.len() / d.max(1);
    let rows = rows.min(n);
    let short = maps.iter().find(|(_, a)| a.len() < rows || a.d != d);
    if x.len() != n * d || labels.is_some_and(|l| l.len() < rows) || short.is_some() {
        return Err(Error::Shape {
            what: "saliency gallery".into(),
            expected: format!("{rows} images of {d} values, with labels and maps for each"),
            got: format!(
                "{} values{}",
                x.len(),
                short.map_or(String::new(), |(name, a)| format!(
                    ", {} maps of {} values for {name}",
                    a.len(),
                    a.d
                ))
            ),
        });
    }

    let mut columns = vec!["image".to_string()];
    columns.extend(maps.iter().map(|(name, _)| name.to_string()));
    let mut gallery = Gallery::new(columns);
    gallery.legends.push(SALIENCY_LEGEND);
    for i in 0..rows {
        let image = &x[i * d..(i + 1) * d];
        let mut caption = match maps.first() {
            Some((_, a)) => {
                let p = softmax(&a.logits[i * k..(i + 1) * k]);
                let pred = argmax(&p);
                format!("pred {} ({:.0}%)", model.class_name(pred), 100.0 * p[pred])
            }
            None => String::new(),
        };
        if let Some(l) = labels {
            caption = format!("label {} | {caption}", l[i]);
        }
        let mut row = vec![Tile::image(image, shape, caption)];
        for (_, a) in maps {
            let map = a.map(i);
            // Integrated Gradients shows its completeness; the others their range.
            let detail = match &a.baseline_scores {
                Some(base) => format!(
                    "sum {:.2}, f(x)-f(b) {:.2}",
                    map.iter().sum::<f32>(),
                    a.scores[i] - base[i]
                ),
                None => format!(
                    "max |a| {:.3}",
                    map.iter().fold(0.0f32, |m, v| m.max(v.abs()))
                ),
            };
            row.push(Tile::saliency(
                image,
                shape,
                &magnitude(map, shape),
                format!(
                    "class {} | {detail}",
                    model.class_name(a.classes[i] as usize)
                ),
            ));
        }
        gallery.push_row(row);
    }
    Ok(gallery)
}
