//! The plain gradient of the class score, times the input, and guided.

use crate::explain::{Finish, Input, Method, Spec};

/// The saliency map of Simonyan, Vedaldi and Zisserman (2014), "Deep inside
/// convolutional networks":
///
/// `a = d f_c(x) / d x`
///
/// where `f_c` is the logit of class `c`: one backward pass seeded with a
/// one-hot at the logits. Signed; heatmaps show `|a|`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gradient;

impl Method for Gradient {
    fn name(&self) -> &'static str {
        "gradient"
    }

    fn spec(&self) -> Spec {
        Spec {
            input: Input::Image,
            guided: false,
            finish: Finish::Mean,
        }
    }
}

/// Gradient times input (Shrikumar, Greenside, Shcherbina and Kundaje 2016,
/// "Not just a black box"):
///
/// `a = x * d f_c(x) / d x`
///
/// the first-order Taylor term of each input value's contribution to the
/// score; zero wherever the input is zero (the black background of digits).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GradientXInput;

impl Method for GradientXInput {
    fn name(&self) -> &'static str {
        "gradient-x-input"
    }

    fn spec(&self) -> Spec {
        Spec {
            input: Input::Image,
            guided: false,
            finish: Finish::TimesInput,
        }
    }
}

/// Guided backpropagation (Springenberg, Dosovitskiy, Brox and Riedmiller
/// 2015, "Striving for simplicity"): the gradient of the class score, except
/// that each ReLU passes back only positive gradients where its input was
/// positive:
///
/// `g_in = max(g_out, 0) * [x > 0]`
///
/// It shows what excites the class, and is no longer the gradient of any
/// function of the input (so it is for pictures, not for attacks).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GuidedBackprop;

impl Method for GuidedBackprop {
    fn name(&self) -> &'static str {
        "guided-backprop"
    }

    fn spec(&self) -> Spec {
        Spec {
            input: Input::Image,
            guided: true,
            finish: Finish::Mean,
        }
    }
}
