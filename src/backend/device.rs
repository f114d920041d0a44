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
//!   `backend::gpu::kernels::MAX_P` continuous dimensions) on the CPU instead of failing.
//!
//! Built without the `gpu` feature, `auto` is the CPU and `gpu` an error that says so.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
#[cfg(feature = "gpu")]
use std::sync::atomic::Ordering;

use super::cpu::{CpuData, CpuResp};
#[cfg(feature = "gpu")]
use super::gpu::kernels::MAX_P;
#[cfg(feature = "gpu")]
use super::gpu::{GpuBackend, GpuData, GpuResp};
use super::{Backend, CpuBackend, EStepSummary, KernelParams, MixtureData, Pass, Posteriors, SuffStats, Vectors};
use crate::foundation::choice::Choice;
use crate::foundation::error::{Error, Result};
#[cfg(feature = "gpu")]
use crate::foundation::gpu::AdapterPolicy;

/// Where the kernels run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU backend.
    Cpu,
    /// A GPU adapter (software ones included); an error if there is none.
    Gpu,
}

impl Choice for DeviceChoice {
    const ALL: &'static [DeviceChoice] = &[DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Gpu];

    fn name(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Gpu => "gpu",
        }
    }

    fn help(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "a hardware GPU if there is one, else the CPU",
            DeviceChoice::Cpu => "the CPU backend",
            DeviceChoice::Gpu => "a GPU adapter (software ones included); an error if there is none",
        }
    }
}

/// The backend chosen for a run.
#[derive(Debug)]
pub struct AnyBackend {
    cpu: CpuBackend,
    #[cfg(feature = "gpu")]
    gpu: Option<GpuBackend>,
    auto: bool,
    /// Why the CPU runs although a GPU was asked for or is present (printed once by the CLI).
    note: Mutex<Option<String>>,
    /// Set when auto ran the mixture on the CPU although a GPU was open.
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    mixture_on_cpu: AtomicBool,
}

impl AnyBackend {
    /// The CPU backend alone.
    pub fn cpu() -> Self {
        AnyBackend {
            cpu: CpuBackend::new(),
            #[cfg(feature = "gpu")]
            gpu: None,
            auto: false,
            note: Mutex::new(None),
            mixture_on_cpu: AtomicBool::new(false),
        }
    }

    /// A GPU backend that was opened already.
    #[cfg(feature = "gpu")]
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
    #[cfg(not(feature = "gpu"))]
    pub fn select(choice: DeviceChoice) -> Result<Self> {
        match choice {
            DeviceChoice::Gpu => Err(Error::Gpu(
                "--device gpu: this segmix was built without GPU support (the `gpu` cargo feature); \
                 rebuild with it, or use --device cpu"
                    .into(),
            )),
            DeviceChoice::Cpu | DeviceChoice::Auto => Ok(Self::cpu()),
        }
    }

    /// Resolves `--device`.
    #[cfg(feature = "gpu")]
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
    #[cfg(feature = "gpu")]
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

    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    fn set_note(&self, note: String) {
        *self.note.lock().expect("note") = Some(note);
    }
}

/// Data resident on whichever backend took it.
#[derive(Debug)]
pub enum AnyData {
    Cpu(CpuData),
    #[cfg(feature = "gpu")]
    Gpu(GpuData),
}

/// A responsibility buffer on whichever backend holds the data.
#[derive(Debug)]
pub enum AnyResp {
    Cpu(CpuResp),
    #[cfg(feature = "gpu")]
    Gpu(GpuResp),
}

fn mismatch() -> Error {
    Error::config("internal: data and responsibilities live on different backends")
}

#[cfg(feature = "gpu")]
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
            #[cfg(feature = "gpu")]
            (AnyData::Gpu($d), AnyResp::Gpu($r)) => {
                let $b = $self.gpu_ref()?;
                $body
            }
            #[allow(unreachable_patterns)]
            _ => Err(mismatch()),
        }
    };
}

impl Backend for AnyBackend {
    type Data = AnyData;
    type Resp = AnyResp;

    fn describe(&self) -> String {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            if self.mixture_on_cpu.load(Ordering::Relaxed) {
                return format!("{}; mixture on {} (wider than the GPU kernels)", g.describe(), self.cpu.describe());
            }
            return g.describe();
        }
        self.cpu.describe()
    }

    fn upload(&self, data: &MixtureData) -> Result<AnyData> {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            if !(self.auto && data.p > MAX_P) {
                return Ok(AnyData::Gpu(g.upload(data)?));
            }
            self.set_note(format!(
                "running the mixture on the CPU: it has {} continuous dimensions and the GPU \
                 kernels take at most {MAX_P}",
                data.p
            ));
            self.mixture_on_cpu.store(true, Ordering::Relaxed);
        }
        Ok(AnyData::Cpu(self.cpu.upload(data)?))
    }

    fn alloc_resp(&self, data: &AnyData, k: usize) -> Result<AnyResp> {
        Ok(match data {
            AnyData::Cpu(d) => AnyResp::Cpu(self.cpu.alloc_resp(d, k)?),
            #[cfg(feature = "gpu")]
            AnyData::Gpu(d) => AnyResp::Gpu(self.gpu_ref()?.alloc_resp(d, k)?),
        })
    }

    fn set_resp(&self, data: &AnyData, resp: &mut AnyResp, values: &[f64]) -> Result<()> {
        on_backend!(self, data, resp, |b, d, r| b.set_resp(d, r, values))
    }

    fn e_step(
        &self,
        data: &AnyData,
        models: &mut [(&KernelParams, &mut AnyResp)],
        pass: Pass,
    ) -> Result<Vec<(EStepSummary, Option<SuffStats>)>> {
        match data {
            AnyData::Cpu(d) => {
                let mut inner = Vec::with_capacity(models.len());
                for (p, r) in models.iter_mut() {
                    #[allow(irrefutable_let_patterns)]
                    let AnyResp::Cpu(r) = &mut **r else { return Err(mismatch()) };
                    inner.push((*p, r));
                }
                self.cpu.e_step(d, &mut inner, pass)
            }
            #[cfg(feature = "gpu")]
            AnyData::Gpu(d) => {
                let mut inner = Vec::with_capacity(models.len());
                for (p, r) in models.iter_mut() {
                    let AnyResp::Gpu(r) = &mut **r else { return Err(mismatch()) };
                    inner.push((*p, r));
                }
                self.gpu_ref()?.e_step(d, &mut inner, pass)
            }
        }
    }

    fn m_stats(&self, data: &AnyData, params: &KernelParams, resp: &AnyResp) -> Result<SuffStats> {
        on_backend!(self, data, resp, |b, d, r| b.m_stats(d, params, r))
    }

    fn read_posteriors(&self, data: &AnyData, resp: &AnyResp) -> Result<Posteriors> {
        on_backend!(self, data, resp, |b, d, r| b.read_posteriors(d, r))
    }

    fn place(&self, vectors: Vectors) -> Result<Vectors> {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return g.place(vectors);
        }
        self.cpu.place(vectors)
    }
}
