//! Occlusion sensitivity (Zeiler and Fergus 2014).

use crate::explain::{Finish, Input, Method, Spec};

/// Occlusion sensitivity, from "Visualizing and understanding convolutional
/// networks": a grey square slides over the image and the class score is
/// taken with each position covered. For the windows `W_p` (all channels,
/// `window` x `window` pixels, moved by `stride`, the last one touching the
/// border) and `x_p` the image with `W_p` set to `fill`:
///
/// `drop_p = f_c(x) - f_c(x_p)`,  `a_i = mean_{p : i in W_p} drop_p`
///
/// Only forward passes, all positions of an image batched. A positive value
/// means covering the pixel lowers the score. Unlike the gradient methods it
/// sees what the network does to a real change of the input, at the
/// resolution of the window.
#[derive(Clone, Debug, PartialEq)]
pub struct Occlusion {
    /// Side of the square, in pixels. Default 6.
    pub window: usize,
    /// Step between positions, in pixels. Default 2.
    pub stride: usize,
    /// The square's value. Default 0.5 (grey).
    pub fill: f32,
}

impl Default for Occlusion {
    fn default() -> Self {
        Occlusion {
            window: 6,
            stride: 2,
            fill: 0.5,
        }
    }
}

impl Method for Occlusion {
    fn name(&self) -> &'static str {
        "occlusion"
    }

    fn spec(&self) -> Spec {
        Spec {
            input: Input::Occlude {
                window: self.window,
                stride: self.stride,
                fill: self.fill,
            },
            guided: false,
            finish: Finish::MeanDrop,
        }
    }
}
