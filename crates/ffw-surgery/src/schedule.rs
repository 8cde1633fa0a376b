//! Plateau detection (PyTorch `ReduceLROnPlateau`, mode "min", relative threshold) and the
//! schedules built on it: FFW's temperature, the probe's "train to plateau" and the vanilla
//! learning rate of CelebA.

/// Counts epochs without a relative improvement of `threshold` over the best value seen.
#[derive(Clone, Debug)]
pub struct Plateau {
    threshold: f64,
    patience: usize,
    best: f64,
    bad_epochs: usize,
    /// Epochs after a reduction during which bad epochs are not counted (torch's `cooldown`).
    cooldown: usize,
    cooldown_left: usize,
}

impl Plateau {
    pub fn new(threshold: f64, patience: usize) -> Self {
        Self {
            threshold,
            patience,
            best: f64::INFINITY,
            bad_epochs: 0,
            cooldown: 0,
            cooldown_left: 0,
        }
    }

    pub fn with_cooldown(self, cooldown: usize) -> Self {
        Self { cooldown, ..self }
    }

    /// Records `value`; true once the no-improvement count exceeds the patience, after which
    /// the count restarts (the best value is kept).
    pub fn observe(&mut self, value: f64) -> bool {
        if value < self.best * (1.0 - self.threshold) {
            self.best = value;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > self.patience {
            self.bad_epochs = 0;
            self.cooldown_left = self.cooldown;
            true
        } else {
            false
        }
    }
}

/// FFW's temperature: starts at 1 and is multiplied by `factor` on every plateau of the
/// validation MI (PROTOCOL §4).
#[derive(Clone, Debug)]
pub struct Temperature {
    pub value: f64,
    factor: f64,
    plateau: Plateau,
}

impl Temperature {
    pub fn new(factor: f64, patience: usize, threshold: f64) -> Self {
        Self {
            value: 1.0,
            factor,
            plateau: Plateau::new(threshold, patience),
        }
    }

    /// Steps on the epoch's validation MI; true if the temperature changed.
    pub fn step(&mut self, mi: f64) -> bool {
        let reduce = self.plateau.observe(mi);
        if reduce {
            self.value *= self.factor;
        }
        reduce
    }
}

/// torch's `ReduceLROnPlateau(mode="min", threshold_mode="rel", min_lr=0)` on a learning
/// rate, stepped once per epoch on the monitored loss.
#[derive(Clone, Debug)]
pub struct PlateauLr {
    pub lr: f64,
    factor: f64,
    plateau: Plateau,
}

impl PlateauLr {
    pub fn new(lr0: f64, factor: f64, threshold: f64, patience: usize, cooldown: usize) -> Self {
        Self {
            lr: lr0,
            factor,
            plateau: Plateau::new(threshold, patience).with_cooldown(cooldown),
        }
    }

    /// Steps on the epoch's loss; returns the learning rate of the next epoch.
    pub fn step(&mut self, loss: f64) -> f64 {
        if self.plateau.observe(loss) {
            self.lr *= self.factor;
        }
        self.lr
    }
}

/// Multi-step learning rate: `lr0 · gamma^(number of milestones <= epoch)`.
pub fn multi_step_lr(lr0: f64, milestones: &[usize], gamma: f64, epoch: usize) -> f64 {
    lr0 * gamma.powi(milestones.iter().filter(|&&m| m <= epoch).count() as i32)
}

/// torch's `CosineAnnealingLR(T_max = epochs, eta_min = 0)` stepped once per epoch:
/// `lr0 · (1 + cos(π · epoch / epochs)) / 2`.
pub fn cosine_lr(lr0: f64, epochs: usize, epoch: usize) -> f64 {
    lr0 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos()) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_comes_only_after_patience_is_exceeded() {
        let mut t = Temperature::new(0.1, 2, 0.05);
        assert!(!t.step(1.0)); // best = 1.0
        assert!(!t.step(0.96)); // not 5% better: bad 1
        assert!(!t.step(0.97)); // bad 2 (== patience, not exceeded)
        assert!(t.step(0.99)); // bad 3 > 2: reduce
        assert!((t.value - 0.1).abs() < 1e-12);
        assert!(!t.step(0.99)); // count restarted: bad 1
    }

    #[test]
    fn a_relative_improvement_beyond_the_threshold_resets_the_count() {
        let mut t = Temperature::new(0.1, 1, 0.05);
        t.step(1.0);
        assert!(!t.step(0.99)); // bad 1
        assert!(!t.step(0.94)); // 6% better than 1.0: reset, best 0.94
        assert!(!t.step(0.93)); // bad 1 (0.93 >= 0.94·0.95)
        assert!(t.step(0.93)); // bad 2 > 1
        assert_eq!(t.value, 0.1);
    }

    /// The sequence torch gives for `ReduceLROnPlateau(opt, factor=0.1, patience=2,
    /// cooldown=1)` from lr 0.1 on these losses (worked by hand from torch's `step`:
    /// better ⇒ reset, else count; in cooldown ⇒ count zeroed; count > patience ⇒ reduce
    /// and start the cooldown).
    #[test]
    fn plateau_lr_follows_torch_with_cooldown() {
        let mut s = PlateauLr::new(0.1, 0.1, 1e-4, 2, 1);
        let losses = [1.0, 0.9, 0.9, 0.95, 0.89995, 0.91, 0.91, 0.91, 0.91, 0.5];
        // 0.89995 is not better than 0.9 by 1e-4 relative (0.9·(1 − 1e-4) = 0.89991).
        let want = [
            0.1, 0.1, // best 1.0, then 0.9
            0.1, 0.1, 0.01, // bad 1, 2, 3 > 2: reduce, cooldown 1
            0.01, // bad 1, zeroed by the cooldown (without it, the next reduction comes a step early)
            0.01, 0.01, 0.001, // bad 1, 2, 3 > 2: reduce
            0.001, // better: best 0.5
        ];
        for (i, (&loss, &lr)) in losses.iter().zip(&want).enumerate() {
            let got = s.step(loss);
            assert!(
                (got - lr).abs() < 1e-12,
                "step {i}: loss {loss}: lr {got}, want {lr}"
            );
        }
    }

    #[test]
    fn multi_step_lr_drops_at_milestones() {
        assert_eq!(multi_step_lr(0.1, &[40, 60], 0.1, 39), 0.1);
        assert!((multi_step_lr(0.1, &[40, 60], 0.1, 40) - 0.01).abs() < 1e-12);
        assert!((multi_step_lr(0.1, &[40, 60], 0.1, 79) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn cosine_lr_follows_torch() {
        assert_eq!(cosine_lr(1e-3, 200, 0), 1e-3);
        assert!((cosine_lr(1e-3, 200, 100) - 5e-4).abs() < 1e-15);
        // torch.optim.lr_scheduler.CosineAnnealingLR(opt, 200) after 50 steps from 1e-3.
        assert!((cosine_lr(1e-3, 200, 50) - 8.535533905932737e-4).abs() < 1e-15);
        assert!(cosine_lr(1e-3, 200, 199) > 0.0);
    }
}
