//! A confounder, built and caught with saliency maps.
//!
//! The construction: a copy of the training digits in which a fraction of the
//! labels (30% by default) is replaced by a different, random class, and
//! every image carries a small bright square whose position encodes its
//! (possibly replaced) training label. The square then predicts the training
//! label perfectly while the digit predicts it only 70% of the time, so a
//! network takes the square, not the digit, as the thing to learn, as the
//! tank detector learned the weather. The clean comparison is trained on the
//! same replaced labels without the square; it can only learn digits.
//!
//! [`study`] then measures both models on held-out digits, with and without
//! the square of their true label, and measures which share of the
//! attribution mass (vanilla gradient and Integrated Gradients, explaining
//! the true label) lies on the square's pixels.
//!
//! ```no_run
//! use advgpu::data::{small_cnn, Digits};
//! use advgpu::explain::confounder::{study, Confounder, Signal, StudyConfig};
//! use advgpu::gpu::{Gpu, GpuOptions};
//! use advgpu::nn::Model;
//! use advgpu::train::TrainConfig;
//!
//! let gpu = Gpu::new_blocking(&GpuOptions::default())?;
//! let digits = Digits::bundled()?;
//! let init = Model::init(small_cnn(), [1, 28, 28], 0)?;
//! let config = TrainConfig { epochs: 3, ..TrainConfig::default() };
//! let train = |signal| Confounder::new(signal).train(&gpu, &init, &digits.train(), &config, |_| {});
//! let (clean, confounded) = (train(Signal::Clean)?, train(Signal::Mark)?);
//! let mark = Confounder::new(Signal::Mark);
//! let s = study(&gpu, &clean, &confounded, &digits.held_out(), &mark, &StudyConfig::default(), |_, _| {})?;
//! print!("{}", s.table());
//! s.gallery(&mark)?.save("confounder.png".as_ref())?;
//! # Ok::<(), advgpu::Error>(())
//! ```

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::data::Digits;
use crate::error::{Error, Result};
use crate::explain::{
    explain_on, mass_share, Attributions, ClassChoice, Gradient, IntegratedGradients, Options,
};
use crate::gpu::Gpu;
use crate::nn::{Classifier, GpuModel, Layer, Model};
use crate::report::gallery::{Gallery, Tile, SALIENCY_LEGEND};
use crate::train::{train, Progress, TrainConfig};

/// What the training copy carries besides the replaced labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// A square whose position encodes the training label: the confounder.
    Mark,
    /// Nothing: the clean comparison, trained on the same replaced labels.
    Clean,
}

impl Signal {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Mark => "mark",
            Signal::Clean => "clean",
        }
    }

    /// Parses `mark` or `clean`.
    pub fn parse(text: &str) -> Result<Signal> {
        match text {
            "mark" => Ok(Signal::Mark),
            "clean" => Ok(Signal::Clean),
            _ => Err(Error::param(
                "confounder",
                text,
                "mark (a square whose position encodes the label) or clean \
                 (the same replaced labels, no square)",
            )),
        }
    }
}

/// The square: `size` x `size` pixels of `value`, at one position per class.
///
/// Classes `0..ceil(K/2)` sit down the left edge (one pixel in), the rest
/// down the right edge, spread evenly from the top to the bottom. On 28 x 28
/// digits with K = 10 the corners are at x = 1 or 24 and y = 1, 7, 13, 18,
/// 24: at least 5 pixels apart, so that the training set's random shifts of
/// up to 2 pixels keep them apart, and in the emptiest part of MNIST's
/// border (in the bundled training digits a stroke brighter than 0.5 touches
/// the square of a given class in 1.4% of the images, averaged over classes).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Mark {
    /// Side of the square, in pixels. Default 3.
    pub size: usize,
    /// Its pixel value. Default 1 (white).
    pub value: f32,
}

impl Default for Mark {
    fn default() -> Self {
        Mark {
            size: 3,
            value: 1.0,
        }
    }
}

impl Mark {
    /// Top-left corner `(y, x)` of class `class`'s square on `rows x cols`
    /// images with `classes` classes.
    pub fn corner(
        &self,
        class: usize,
        classes: usize,
        rows: usize,
        cols: usize,
    ) -> Result<(usize, usize)> {
        let per_column = classes.div_ceil(2).max(1);
        let (min_rows, min_cols) = (per_column * (self.size + 1) + 2, 2 * self.size + 4);
        if self.size == 0 || rows < min_rows || cols < min_cols {
            return Err(Error::Shape {
                what: "marked images".into(),
                expected: format!(
                    "at least {min_cols}x{min_rows} pixels for {classes} squares of side {} \
                     (which must not be 0)",
                    self.size
                ),
                got: format!("{cols}x{rows}"),
            });
        }
        if class >= classes {
            return Err(Error::param(
                "class",
                class,
                format!("a class in 0..{classes}"),
            ));
        }
        let (column, q) = (class / per_column, class % per_column);
        let x = if column == 0 { 1 } else { cols - 1 - self.size };
        let span = (rows - 2 - self.size) as f64;
        let y = if per_column == 1 {
            1
        } else {
            1 + (q as f64 * span / (per_column - 1) as f64).round() as usize
        };
        Ok((y, x))
    }

    /// Pixel indices `y * cols + x` of class `class`'s square.
    pub fn pixels(
        &self,
        class: usize,
        classes: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<usize>> {
        let (y0, x0) = self.corner(class, classes, rows, cols)?;
        Ok((y0..y0 + self.size)
            .flat_map(|y| (x0..x0 + self.size).map(move |x| y * cols + x))
            .collect())
    }

    /// Paints class `class`'s square onto one `rows x cols` image.
    pub fn stamp(
        &self,
        image: &mut [f32],
        class: usize,
        classes: usize,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        for p in self.pixels(class, classes, rows, cols)? {
            image[p] = self.value;
        }
        Ok(())
    }
}

/// How the training copy is made.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Confounder {
    /// The square, or none for the clean comparison.
    pub signal: Signal,
    /// Share of training labels replaced by a different, random class. Default 0.3.
    pub label_noise: f64,
    /// The square.
    pub mark: Mark,
    /// Seed of which labels are replaced and by what. Default 0.
    pub seed: u64,
}

impl Confounder {
    /// The construction of the issue: `signal`, 30% of labels replaced, a
    /// white 3 x 3 square.
    pub fn new(signal: Signal) -> Confounder {
        Confounder {
            signal,
            label_noise: 0.3,
            mark: Mark::default(),
            seed: 0,
        }
    }

    /// Checks the settings, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.label_noise) {
            return Err(Error::param(
                "label_noise",
                self.label_noise,
                "a share in [0, 1]",
            ));
        }
        if !self.mark.value.is_finite() {
            return Err(Error::param(
                "mark value",
                self.mark.value,
                "a finite number",
            ));
        }
        Ok(())
    }

    /// The labels with `round(label_noise * n)` of them, chosen at random,
    /// replaced by a different class drawn uniformly from the other `classes - 1`.
    pub fn replaced_labels(&self, labels: &[u8], classes: usize) -> Result<Vec<u8>> {
        self.validate()?;
        if !(2..=256).contains(&classes) {
            return Err(Error::param("classes", classes, "2..=256"));
        }
        if let Some(bad) = labels.iter().find(|l| usize::from(**l) >= classes) {
            return Err(Error::param(
                "label",
                bad,
                format!("a class in 0..{classes}"),
            ));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ 0x6c61_6265);
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.shuffle(&mut rng);
        let replaced = (self.label_noise * labels.len() as f64).round() as usize;
        let mut out = labels.to_vec();
        for &i in &order[..replaced] {
            let shift = rng.random_range(1..classes);
            out[i] = ((usize::from(labels[i]) + shift) % classes) as u8;
        }
        Ok(out)
    }

    /// The training copy: replaced labels and, for [`Signal::Mark`], every
    /// image carrying the square of its replaced label.
    pub fn training_set(&self, digits: &Digits, classes: usize) -> Result<Digits> {
        let labels = self.replaced_labels(&digits.labels, classes)?;
        let copy = Digits {
            labels,
            ..digits.clone()
        };
        match self.signal {
            Signal::Mark => self.marked(&copy, classes),
            Signal::Clean => Ok(copy),
        }
    }

    /// `digits` with each image carrying the square of its own label.
    pub fn marked(&self, digits: &Digits, classes: usize) -> Result<Digits> {
        let mut out = digits.clone();
        let px = digits.image_len();
        for (i, label) in digits.labels.iter().enumerate() {
            self.mark.stamp(
                &mut out.images[i * px..(i + 1) * px],
                usize::from(*label),
                classes,
                digits.rows,
                digits.cols,
            )?;
        }
        Ok(out)
    }

    /// A picture of the training copy: the first `n` digits as the network
    /// sees them, captioned with the training label and, where it was
    /// replaced, the true one.
    pub fn training_gallery(&self, digits: &Digits, classes: usize, n: usize) -> Result<Gallery> {
        // The whole copy, so that the same labels are replaced as in training.
        let head = digits.slice(0..n);
        let set = self.training_set(digits, classes)?.slice(0..n);
        let shape = [1, digits.rows, digits.cols];
        let mut gallery = Gallery::new(Vec::new());
        let tiles: Vec<Tile> = (0..set.len())
            .map(|i| {
                let (trained, truth) = (set.labels[i], head.labels[i]);
                let caption = if trained == truth {
                    format!("label {trained}")
                } else {
                    format!("label {trained} | (a {truth}, replaced)")
                };
                Tile::image(set.image(i), shape, caption)
            })
            .collect();
        for row in tiles.chunks(10) {
            gallery.push_row(row.to_vec());
        }
        Ok(gallery)
    }

    /// Trains `model` on the training copy of `digits`.
    pub fn train(
        &self,
        gpu: &Gpu,
        model: &Model,
        digits: &Digits,
        config: &TrainConfig,
        progress: impl FnMut(Progress),
    ) -> Result<Model> {
        let set = self.training_set(digits, model.num_classes())?;
        log::info!(
            "training on {} digits, {:.0}% of labels replaced, signal {}",
            set.len(),
            100.0 * self.label_noise,
            self.signal.name()
        );
        train(gpu, model, &set, config, progress)
    }
}

/// The architectures the confounder is usually shown with: `small-cnn` (the
/// bundled model's, [`crate::data::small_cnn`]) or `mlp` (one hidden layer of
/// 64 units on the flattened image: seconds to train, for a quick look).
pub fn architecture(name: &str, input_shape: [usize; 3], classes: usize) -> Result<Vec<Layer>> {
    match name {
        "small-cnn" => Ok(crate::data::small_cnn()),
        "mlp" => Ok(vec![
            Layer::Flatten,
            Layer::Linear {
                in_features: input_shape.iter().product(),
                out_features: 64,
                bias: true,
            },
            Layer::Relu,
            Layer::Linear {
                in_features: 64,
                out_features: classes,
                bias: true,
            },
        ]),
        _ => Err(Error::param("arch", name, "small-cnn or mlp")),
    }
}

/// How the study is run.
#[derive(Clone, Debug)]
pub struct StudyConfig {
    /// Held-out digits whose attributions are measured (accuracy uses all
    /// of them). Default 100.
    pub explained: usize,
    /// Integrated Gradients steps. Default 32.
    pub ig_steps: usize,
    /// Digits shown in the gallery. Default 6.
    pub gallery_rows: usize,
    /// Rows per GPU batch; `None` as in [`Options::batch`].
    pub batch: Option<usize>,
}

impl Default for StudyConfig {
    fn default() -> Self {
        StudyConfig {
            explained: 100,
            ig_steps: 32,
            gallery_rows: 6,
            batch: None,
        }
    }
}

/// What the study measured for one model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Findings {
    /// Held-out accuracy on the digits as they are.
    pub accuracy_without_mark: f64,
    /// Held-out accuracy with each digit carrying its true label's square.
    pub accuracy_with_mark: f64,
    /// Mean share of vanilla-gradient mass on the square's pixels (marked digits).
    pub gradient_share: f64,
    /// Mean share of Integrated Gradients mass on the square's pixels (marked digits).
    pub ig_share: f64,
}

/// Both models side by side.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Study {
    /// Held-out digits the accuracies are measured on.
    pub n: usize,
    /// Held-out digits the attribution shares are measured on.
    pub explained: usize,
    /// Integrated Gradients steps.
    pub ig_steps: usize,
    /// The share the square's pixels would get if attribution were uniform.
    pub uniform_share: f64,
    /// The model trained without the square.
    pub clean: Findings,
    /// The model trained with it.
    pub confounded: Findings,
    /// `confounded.gradient_share / clean.gradient_share`.
    pub gradient_ratio: f64,
    /// `confounded.ig_share / clean.ig_share`.
    pub ig_ratio: f64,
    #[serde(skip)]
    classes: usize,
    #[serde(skip)]
    shown: Shown,
}

/// What the gallery needs: the first digits, with and without their square,
/// and both models' predictions and maps.
#[derive(Clone, Debug, Default)]
struct Shown {
    shape: [usize; 3],
    /// The digits as they are.
    plain: Vec<f32>,
    /// The same digits carrying their true label's square.
    marked: Vec<f32>,
    labels: Vec<u8>,
    /// Clean, then confounded.
    models: Vec<ShownModel>,
}

/// One model's part of the gallery.
#[derive(Clone, Debug)]
struct ShownModel {
    /// Predicted class on each plain digit.
    plain_pred: Vec<usize>,
    /// Predicted class on each marked digit.
    marked_pred: Vec<usize>,
    gradient: Attributions,
    ig: Attributions,
}

/// Measures `clean` and `confounded` on `held_out`, with and without the
/// square of each digit's true label. `progress` is told (rows done, rows
/// in all) of the attribution work.
pub fn study(
    gpu: &Gpu,
    clean: &Model,
    confounded: &Model,
    held_out: &Digits,
    confounder: &Confounder,
    config: &StudyConfig,
    mut progress: impl FnMut(u64, u64),
) -> Result<Study> {
    confounder.validate()?;
    if config.explained == 0 || config.explained > held_out.len() {
        return Err(Error::param(
            "explained",
            config.explained,
            format!("1..={} (the held-out digits)", held_out.len()),
        ));
    }
    let shape = clean.input_shape;
    if confounded.input_shape != shape || shape != [1, held_out.rows, held_out.cols] {
        return Err(Error::Shape {
            what: "confounder study models".into(),
            expected: format!("both taking [1, {}, {}]", held_out.rows, held_out.cols),
            got: format!("{:?} and {:?}", shape, confounded.input_shape),
        });
    }
    let classes = clean.num_classes();
    let marked = confounder.marked(held_out, classes)?;
    let explained = marked.slice(0..config.explained);
    let masks: Vec<Vec<usize>> = explained
        .labels
        .iter()
        .map(|l| {
            confounder
                .mark
                .pixels(usize::from(*l), classes, held_out.rows, held_out.cols)
        })
        .collect::<Result<_>>()?;
    let options = Options {
        class: ClassChoice::PerSample(explained.labels_u32()),
        batch: config.batch,
    };
    let ig = IntegratedGradients {
        steps: config.ig_steps,
        baseline: 0.0,
    };
    let per_model = (config.explained * (1 + config.ig_steps)) as u64;
    let total = 2 * per_model;
    let rows = config.gallery_rows.min(config.explained);
    let d = explained.image_len();

    let mut findings = Vec::new();
    let mut shown = Shown {
        shape,
        plain: held_out.images[..rows * d].to_vec(),
        marked: explained.images[..rows * d].to_vec(),
        labels: explained.labels[..rows].to_vec(),
        models: Vec::new(),
    };
    for (m, model) in [clean, confounded].into_iter().enumerate() {
        let classifier = Classifier::new(gpu, model, 250.min(held_out.len()).max(1))?;
        let without = classifier.evaluate(&held_out.images, &held_out.labels)?;
        let with = classifier.evaluate(&marked.images, &marked.labels)?;

        let gm = GpuModel::new(gpu, model)?;
        let before = m as u64 * per_model;
        let grad = explain_on(gpu, &gm, &Gradient, &explained.images, &options, |r| {
            progress(before + r, total)
        })?;
        let before = before + config.explained as u64;
        let integrated = explain_on(gpu, &gm, &ig, &explained.images, &options, |r| {
            progress(before + r, total)
        })?;
        let share = |a: &Attributions| {
            (0..a.len())
                .map(|i| mass_share(a.map(i), shape, &masks[i]))
                .sum::<f64>()
                / a.len() as f64
        };
        findings.push(Findings {
            accuracy_without_mark: without.accuracy,
            accuracy_with_mark: with.accuracy,
            gradient_share: share(&grad),
            ig_share: share(&integrated),
        });
        shown.models.push(ShownModel {
            plain_pred: classifier.predict(&shown.plain)?,
            marked_pred: classifier.predict(&shown.marked)?,
            gradient: keep_first(grad, rows),
            ig: keep_first(integrated, rows),
        });
        log::info!(
            "{} model: accuracy {:.1}% without the square, {:.1}% with it",
            if m == 0 { "clean" } else { "confounded" },
            100.0 * without.accuracy,
            100.0 * with.accuracy
        );
    }
    let confounded_f = findings.pop().expect("two models measured");
    let clean_f = findings.pop().expect("two models measured");
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
    Ok(Study {
        n: held_out.len(),
        explained: config.explained,
        ig_steps: config.ig_steps,
        uniform_share: (confounder.mark.size * confounder.mark.size) as f64 / d as f64,
        gradient_ratio: ratio(confounded_f.gradient_share, clean_f.gradient_share),
        ig_ratio: ratio(confounded_f.ig_share, clean_f.ig_share),
        clean: clean_f,
        confounded: confounded_f,
        classes,
        shown,
    })
}

/// The first `rows` images' part of `a`.
fn keep_first(mut a: Attributions, rows: usize) -> Attributions {
    let k = a.logits.len() / a.len().max(1);
    a.maps.truncate(rows * a.d);
    a.classes.truncate(rows);
    a.logits.truncate(rows * k);
    a.scores.truncate(rows);
    a
}

impl Study {
    /// The gallery: per digit, the digit as it is and with its true label's
    /// square, captioned with both models' predictions, then each model's
    /// gradient and Integrated Gradients maps of the marked digit, captioned
    /// with the share of the mass on the square.
    pub fn gallery(&self, confounder: &Confounder) -> Result<Gallery> {
        let s = &self.shown;
        let [_, h, w] = s.shape;
        let d = h * w;
        let mut gallery = Gallery::new(vec![
            "digit".into(),
            "with its label's square".into(),
            "clean: gradient".into(),
            "clean: IG".into(),
            "confounded: gradient".into(),
            "confounded: IG".into(),
        ]);
        gallery.legends.push(SALIENCY_LEGEND);
        let (clean, confounded) = match s.models.as_slice() {
            [a, b] => (a, b),
            _ => return Ok(gallery),
        };
        for (i, label) in s.labels.iter().enumerate() {
            let (plain, marked) = (&s.plain[i * d..(i + 1) * d], &s.marked[i * d..(i + 1) * d]);
            let mask = confounder
                .mark
                .pixels(usize::from(*label), self.classes, h, w)?;
            let preds = |p: &dyn Fn(&ShownModel) -> usize| {
                format!("clean {}, confounded {}", p(clean), p(confounded))
            };
            let mut row = vec![
                Tile::image(
                    plain,
                    s.shape,
                    format!("label {label} | {}", preds(&|m| m.plain_pred[i])),
                ),
                Tile::image(marked, s.shape, preds(&|m| m.marked_pred[i])),
            ];
            for model in [clean, confounded] {
                for a in [&model.gradient, &model.ig] {
                    let share = mass_share(a.map(i), s.shape, &mask);
                    row.push(Tile::saliency(
                        marked,
                        s.shape,
                        &crate::explain::magnitude(a.map(i), s.shape),
                        format!("{:.0}% on the square", 100.0 * share),
                    ));
                }
            }
            gallery.push_row(row);
        }
        Ok(gallery)
    }

    /// The table of both models side by side, as text.
    pub fn table(&self) -> String {
        let pct = |v: f64| format!("{:.1}%", 100.0 * v);
        let mut t = String::new();
        t.push_str(&format!(
            "{:<38} {:>10} {:>12}\n",
            "", "clean", "confounded"
        ));
        let mut line = |name: &str, a: String, b: String| {
            t.push_str(&format!("{name:<38} {a:>10} {b:>12}\n"));
        };
        line(
            &format!("held-out accuracy, no square (n={})", self.n),
            pct(self.clean.accuracy_without_mark),
            pct(self.confounded.accuracy_without_mark),
        );
        line(
            "held-out accuracy, true label's square",
            pct(self.clean.accuracy_with_mark),
            pct(self.confounded.accuracy_with_mark),
        );
        line(
            &format!("gradient mass on square (n={})", self.explained),
            pct(self.clean.gradient_share),
            pct(self.confounded.gradient_share),
        );
        line(
            &format!("IG mass on square ({} steps)", self.ig_steps),
            pct(self.clean.ig_share),
            pct(self.confounded.ig_share),
        );
        t.push_str(&format!(
            "confounded / clean mass on the square: gradient {:.1}x, IG {:.1}x \
             (uniform attribution would give {:.1}%)\n",
            self.gradient_ratio,
            self.ig_ratio,
            100.0 * self.uniform_share
        ));
        t
    }
}
