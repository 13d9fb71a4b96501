//! FGSM, the fast gradient sign method (Goodfellow, Shlens and Szegedy 2015).

use crate::attack::{Attack, Norm, Spec};

/// One step of size `eps` along the gradient's sign:
///
/// `x = clip01(x0 + eps * sign(g))`
///
/// Targeted: `g` is the gradient of the negated loss towards the target.
#[derive(Clone, Debug, PartialEq)]
pub struct Fgsm {
    /// L-inf radius (and step size). Default 8/255.
    pub eps: f32,
}

impl Default for Fgsm {
    fn default() -> Self {
        Fgsm { eps: 8.0 / 255.0 }
    }
}

impl Attack for Fgsm {
    fn name(&self) -> &'static str {
        "fgsm"
    }

    fn spec(&self) -> Spec {
        Spec {
            norm: Norm::Linf,
            eps: self.eps,
            alpha: self.eps,
            steps: 1,
            restarts: 1,
            random_start: false,
            momentum: None,
            mask: None,
        }
    }
}
