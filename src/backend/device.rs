//! `--device auto|cpu|gpu`: choosing a backend at run time, and [`AnyBackend`], the closed enum
//! that dispatches the [`Backend`] seam to whichever was chosen.
//!
//! * `cpu` — the CPU backend.
//! * `gpu` — the best GPU adapter, hardware first; a software adapter (lavapipe/llvmpipe,
//!   SwiftShader, WARP) when it is the only one, which is how CI runs the shaders. No adapter at
//!   all is an error.
//! * `auto` (default) — a hardware GPU when there is one, else the CPU backend with one line
//!   saying why. Auto never takes a software adapter: on the same cores it is far slower than the
//!   CPU backend. Auto also runs a model the GPU kernels cannot take (more than
//!   [`super::gpu::kernels::MAX_P`] continuous dimensions) on the CPU instead of failing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::cpu::{CpuData, CpuResp};
use super::gpu::kernels::MAX_P;
use super::gpu::{AdapterPolicy, GpuBackend, GpuData, GpuResp};
use super::{Backend, CpuBackend, EStepSummary, Gram, KernelParams, MixtureData, Posteriors, SuffStats};
use crate::error::{Error, Result};

/// Where the kernels run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU backend.
    Cpu,
    /// A GPU adapter (software ones included); an error if there is none.
    Gpu,
}

/// The backend chosen for a run.
#[derive(Debug)]
pub struct AnyBackend {
    cpu: CpuBackend,
    gpu: Option<GpuBackend>,
    auto: bool,
    /// Why the CPU runs although a GPU was asked for or is present (printed once by the CLI).
    note: Mutex<Option<String>>,
    /// Set when auto ran the mixture on the CPU although a GPU was open.
    mixture_on_cpu: AtomicBool,
}

impl AnyBackend {
    /// The CPU backend alone.
    pub fn cpu() -> Self {
        AnyBackend {
            cpu: CpuBackend::new(),
            gpu: None,
            auto: false,
            note: Mutex::new(None),
            mixture_on_cpu: AtomicBool::new(false),
        }
    }

    /// A GPU backend that was opened already.
    pub fn gpu(gpu: GpuBackend) -> Self {
        AnyBackend {
            cpu: CpuBackend::new(),
            gpu: Some(gpu),
            auto: false,
            note: Mutex::new(None),
            mixture_on_cpu: AtomicBool::new(false),
        }
    }

    /// Resolves `--device`.
    pub fn select(choice: DeviceChoice) -> Result<Self> {
        match choice {
            DeviceChoice::Cpu => Ok(Self::cpu()),
            DeviceChoice::Gpu => match GpuBackend::open(AdapterPolicy::AllowSoftware)? {
                Ok(gpu) => Ok(Self::gpu(gpu)),
                Err(reason) => Err(Error::Gpu(format!(
                    "--device gpu: {reason}. Install the GPU's Vulkan driver (or, for a software \
                     device, Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1), \
                     or use --device cpu"
                ))),
            },
            DeviceChoice::Auto => {
                let mut backend = Self::cpu();
                backend.auto = true;
                match GpuBackend::open(AdapterPolicy::HardwareOnly) {
                    Ok(Ok(gpu)) => backend.gpu = Some(gpu),
                    Ok(Err(reason)) => backend.set_note(format!("running on the CPU: {reason}")),
                    Err(e) => backend.set_note(format!("running on the CPU: {e}")),
                }
                Ok(backend)
            }
        }
    }

    /// The GPU backend, when one was opened.
    pub fn gpu_backend(&self) -> Option<&GpuBackend> {
        self.gpu.as_ref()
    }

    /// True for `--device auto`, which falls back to the CPU rather than fail on a GPU problem.
    pub fn is_auto(&self) -> bool {
        self.auto
    }

    /// Takes the line that says why the CPU runs, if there is one.
    pub fn take_note(&self) -> Option<String> {
        self.note.lock().expect("note").take()
    }

    fn set_note(&self, note: String) {
        *self.note.lock().expect("note") = Some(note);
    }
}

/// Data resident on whichever backend took it.
#[derive(Debug)]
pub enum AnyData {
    Cpu(CpuData),
    Gpu(GpuData),
}

/// A responsibility buffer on whichever backend holds the data.
#[derive(Debug)]
pub enum AnyResp {
    Cpu(CpuResp),
    Gpu(GpuResp),
}

fn mismatch() -> Error {
    Error::config("internal: data and responsibilities live on different backends")
}

impl AnyBackend {
    fn gpu_ref(&self) -> Result<&GpuBackend> {
        self.gpu.as_ref().ok_or_else(mismatch)
    }
}

/// Runs `$body` with `$b` bound to the backend that holds `$data` and `$resp`, and `$d`, `$r`
/// to their inner values.
macro_rules! on_backend {
    ($self:ident, $data:expr, $resp:expr, |$b:ident, $d:ident, $r:ident| $body:expr) => {
        match ($data, $resp) {
            (AnyData::Cpu($d), AnyResp::Cpu($r)) => {
                let $b = &$self.cpu;
                $body
            }
            (AnyData::Gpu($d), AnyResp::Gpu($r)) => {
                let $b = $self.gpu_ref()?;
                $body
            }
            _ => Err(mismatch()),
        }
    };
}

impl Backend for AnyBackend {
    type Data = AnyData;
    type Resp = AnyResp;

    fn describe(&self) -> String {
        match &self.gpu {
            Some(g) if self.mixture_on_cpu.load(Ordering::Relaxed) => {
                format!("{}; mixture on {} (wider than the GPU kernels)", g.describe(), self.cpu.describe())
            }
            Some(g) => g.describe(),
            None => self.cpu.describe(),
        }
    }

    fn upload(&self, data: &MixtureData) -> Result<AnyData> {
        match &self.gpu {
            Some(_) if self.auto && data.p > MAX_P => {
                self.set_note(format!(
                    "running the mixture on the CPU: it has {} continuous dimensions and the GPU \
                     kernels take at most {MAX_P}",
                    data.p
                ));
                self.mixture_on_cpu.store(true, Ordering::Relaxed);
                Ok(AnyData::Cpu(self.cpu.upload(data)?))
            }
            Some(g) => Ok(AnyData::Gpu(g.upload(data)?)),
            None => Ok(AnyData::Cpu(self.cpu.upload(data)?)),
        }
    }

    fn alloc_resp(&self, data: &AnyData, k: usize) -> Result<AnyResp> {
        Ok(match data {
            AnyData::Cpu(d) => AnyResp::Cpu(self.cpu.alloc_resp(d, k)?),
            AnyData::Gpu(d) => AnyResp::Gpu(self.gpu_ref()?.alloc_resp(d, k)?),
        })
    }

    fn set_resp(&self, data: &AnyData, resp: &mut AnyResp, values: &[f64]) -> Result<()> {
        on_backend!(self, data, resp, |b, d, r| b.set_resp(d, r, values))
    }

    fn e_step(&self, data: &AnyData, params: &KernelParams, resp: &mut AnyResp) -> Result<EStepSummary> {
        on_backend!(self, data, resp, |b, d, r| b.e_step(d, params, r))
    }

    fn e_step_stats(
        &self,
        data: &AnyData,
        params: &KernelParams,
        resp: &mut AnyResp,
    ) -> Result<(EStepSummary, SuffStats)> {
        on_backend!(self, data, resp, |b, d, r| b.e_step_stats(d, params, r))
    }

    fn e_step_stats_batch(
        &self,
        data: &AnyData,
        models: &mut [(&KernelParams, &mut AnyResp)],
    ) -> Result<Vec<(EStepSummary, SuffStats)>> {
        match data {
            AnyData::Cpu(d) => {
                let mut inner = Vec::with_capacity(models.len());
                for (p, r) in models.iter_mut() {
                    let AnyResp::Cpu(r) = &mut **r else { return Err(mismatch()) };
                    inner.push((*p, r));
                }
                self.cpu.e_step_stats_batch(d, &mut inner)
            }
            AnyData::Gpu(d) => {
                let mut inner = Vec::with_capacity(models.len());
                for (p, r) in models.iter_mut() {
                    let AnyResp::Gpu(r) = &mut **r else { return Err(mismatch()) };
                    inner.push((*p, r));
                }
                self.gpu_ref()?.e_step_stats_batch(d, &mut inner)
            }
        }
    }

    fn m_stats(&self, data: &AnyData, params: &KernelParams, resp: &AnyResp) -> Result<SuffStats> {
        on_backend!(self, data, resp, |b, d, r| b.m_stats(d, params, r))
    }

    fn read_posteriors(&self, data: &AnyData, resp: &AnyResp) -> Result<Posteriors> {
        on_backend!(self, data, resp, |b, d, r| b.read_posteriors(d, r))
    }

    fn gram(&self, x: &[f32], n: usize, dim: usize) -> Result<Gram> {
        match &self.gpu {
            Some(g) => g.gram(x, n, dim),
            None => self.cpu.gram(x, n, dim),
        }
    }

    fn project(&self, x: &[f32], n: usize, dim: usize, mean: &[f64], w: &[f64], d: usize) -> Result<Vec<f64>> {
        match &self.gpu {
            Some(g) => g.project(x, n, dim, mean, w, d),
            None => self.cpu.project(x, n, dim, mean, w, d),
        }
    }
}
