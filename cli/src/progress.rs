//! Progress bar on stderr for long fits (hidden when stderr is not a terminal or with --quiet).

use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use segmix::mixture::em::Progress;

pub struct Bar {
    bar: ProgressBar,
    /// Warnings already printed before the fit (the first ones of the fit's warnings).
    printed: AtomicUsize,
    quiet: bool,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(0),
            if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() },
        );
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:24} {pos}/{len} fits  {msg}")
                .expect("valid template"),
        );
        Bar { bar, printed: AtomicUsize::new(0), quiet }
    }
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
    /// How many of the fit's warnings were printed before it started.
    pub fn printed(&self) -> usize {
        self.printed.load(Ordering::Relaxed)
    }
}

impl Progress for Bar {
    fn status(&self, line: &str) {
        if !self.quiet {
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }
    fn data_warnings(&self, warnings: &[String]) {
        self.bar.suspend(|| super::warn_all(warnings));
        self.printed.store(warnings.len(), Ordering::Relaxed);
    }
    fn sweep_started(&self, total_runs: usize) {
        self.bar.set_length(total_runs as u64);
    }
    fn run_started(&self, k: usize, restart: usize, n_init: usize) {
        self.bar.set_message(format!("K={k} restart {restart}/{n_init}"));
    }
    fn iteration(&self, k: usize, restart: usize, iter: usize, loglik: f64) {
        self.bar.set_message(format!("K={k} restart {restart} iter {iter} loglik {loglik:.3}"));
    }
    fn run_finished(&self) {
        self.bar.inc(1);
    }
}
