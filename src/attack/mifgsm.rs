//! MI-FGSM, momentum iterative FGSM (Dong et al. 2018).

use crate::attack::{Attack, Norm, Spec};

/// BIM whose step follows an accumulated, L1-normalised gradient:
///
/// `m_{t+1} = mu * m_t + g_t / mean(|g_t|)`, `m_0 = 0`,
/// `x_{t+1} = clip01(clamp(x_t + alpha * sign(m_{t+1}), x0 - eps, x0 + eps))`
///
/// (The mean over a sample's values is its L1 norm divided by D; the sign
/// step is the same either way.)
#[derive(Clone, Debug, PartialEq)]
pub struct MiFgsm {
    /// L-inf radius. Default 8/255.
    pub eps: f32,
    /// Step size. Default 2/255.
    pub alpha: f32,
    /// Number of steps. Default 10.
    pub steps: usize,
    /// Momentum decay. Default 1.0.
    pub mu: f32,
}

impl Default for MiFgsm {
    fn default() -> Self {
        MiFgsm {
            eps: 8.0 / 255.0,
            alpha: 2.0 / 255.0,
            steps: 10,
            mu: 1.0,
        }
    }
}

impl Attack for MiFgsm {
    fn name(&self) -> &'static str {
        "mifgsm"
    }

    fn spec(&self) -> Spec {
        Spec {
            norm: Norm::Linf,
            eps: self.eps,
            alpha: self.alpha,
            steps: self.steps,
            restarts: 1,
            random_start: false,
            momentum: Some(self.mu),
            mask: None,
        }
    }
}
