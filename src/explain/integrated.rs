//! Integrated Gradients (Sundararajan, Taly and Yan 2017).

use crate::explain::{Finish, Input, Method, Spec};

/// Integrated Gradients, "axiomatic attribution for deep networks":
///
/// `a = (x - b) * integral_0^1 d f_c(b + t (x - b)) / d x dt`
///
/// approximated by the midpoint rule over `m` steps, all run as one batch:
///
/// `a ~= (x - b) * 1/m sum_{k=0..m-1} d f_c(b + (k + 1/2)/m (x - b)) / d x`
///
/// `b` is a constant baseline image (black by default). The attributions
/// satisfy completeness, `sum a = f_c(x) - f_c(b)`, up to the quadrature
/// error, which shrinks as `m` grows; [`crate::explain::Attributions`]
/// carries both scores so that the gap can be checked.
#[derive(Clone, Debug, PartialEq)]
pub struct IntegratedGradients {
    /// Points on the path, `m`. Default 64.
    pub steps: usize,
    /// The baseline's value at every pixel. Default 0 (black).
    pub baseline: f32,
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        IntegratedGradients {
            steps: 64,
            baseline: 0.0,
        }
    }
}

impl Method for IntegratedGradients {
    fn name(&self) -> &'static str {
        "integrated-gradients"
    }

    fn spec(&self) -> Spec {
        Spec {
            input: Input::Path {
                baseline: self.baseline,
                steps: self.steps,
            },
            guided: false,
            finish: Finish::TimesDelta,
        }
    }
}
