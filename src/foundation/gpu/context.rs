//! The open device: finding adapters, opening a device with the adapter's own
//! limits, turning validation and out-of-memory errors into [`Error::Gpu`] values (error
//! scopes; the uncaptured-error handler records instead of panicking), and the few buffer
//! operations the kernels need: create, upload in bounded pieces, read back.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::Kernel;
use crate::foundation::error::{Error, Result};

/// Largest single `write_buffer` (the queue stages a copy of every write until the next submit).
const UPLOAD_PIECE: usize = 64 << 20;

/// What `segmix devices` shows about one adapter.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// A CPU rasteriser (llvmpipe/lavapipe, SwiftShader, WARP): correct, slower than the CPU backend.
    pub software: bool,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
}

impl AdapterSummary {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let l = adapter.limits();
        AdapterSummary {
            software: is_software(&info),
            name: info.name.clone(),
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: match info.device_type {
                wgpu::DeviceType::DiscreteGpu => "discrete GPU",
                wgpu::DeviceType::IntegratedGpu => "integrated GPU",
                wgpu::DeviceType::VirtualGpu => "virtual GPU",
                wgpu::DeviceType::Cpu => "CPU (software)",
                wgpu::DeviceType::Other => "other",
            }
            .to_string(),
            driver: [info.driver.as_str(), info.driver_info.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
        }
    }

    /// `name (backend, type)`, for log lines and `model.json`.
    pub fn label(&self) -> String {
        format!("{} ({}, {})", self.name, self.backend, self.device_type)
    }
}

/// Software rasterisers report `DeviceType::Cpu`; WARP reports itself by name only.
fn is_software(info: &wgpu::AdapterInfo) -> bool {
    let name = info.name.to_lowercase();
    info.device_type == wgpu::DeviceType::Cpu
        || ["llvmpipe", "lavapipe", "swiftshader", "microsoft basic render driver", "warp"]
            .iter()
            .any(|s| name.contains(s))
}

/// Preference among hardware adapters: discrete, then integrated, then the rest.
fn rank(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn all_adapters() -> Vec<wgpu::Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| rank(&a.get_info()));
    adapters
}

/// Every adapter wgpu can see, best first, and the index of the one `--device auto` takes
/// (none when only software adapters exist).
pub fn list_adapters() -> (Vec<AdapterSummary>, Option<usize>) {
    let list: Vec<AdapterSummary> = all_adapters().iter().map(AdapterSummary::of).collect();
    let auto = list.iter().position(|a| !a.software);
    (list, auto)
}

/// How to choose an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterPolicy {
    /// Hardware adapters only (what `--device auto` uses).
    HardwareOnly,
    /// The best hardware adapter, else a software one (what `--device gpu` uses).
    AllowSoftware,
}

/// An open device: the queue, the adapter it came from, and the compiled pipelines.
#[derive(Debug)]
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) summary: AdapterSummary,
    pub(crate) limits: wgpu::Limits,
    /// Errors that escaped every error scope (and device loss); checked after each operation.
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Compiled pipelines by name and pipeline-overridable constants.
    pipelines: Mutex<HashMap<String, Arc<Kernel>>>,
}

impl Gpu {
    /// Opens the best adapter the policy allows. `Ok(None)` with the reason when there is none.
    pub fn open(policy: AdapterPolicy) -> Result<std::result::Result<Gpu, String>> {
        let adapters = all_adapters();
        let pick = adapters.iter().find(|a| policy == AdapterPolicy::AllowSoftware || !is_software(&a.get_info()));
        let Some(adapter) = pick else {
            let seen: Vec<String> = adapters.iter().map(|a| AdapterSummary::of(a).label()).collect();
            return Ok(Err(if seen.is_empty() {
                "no GPU adapter was found (no Vulkan, Metal or DX12 driver answered)".to_string()
            } else {
                format!(
                    "only software adapters were found ({}), which are slower than the CPU backend",
                    seen.join(", ")
                )
            }));
        };
        let summary = AdapterSummary::of(adapter);
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("segmix"),
            // Timestamp queries (when offered) time the encoder's stages in `segmix bench --embed`.
            required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::Gpu(format!("{}: could not open the device: {e}", summary.label())))?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().expect("error sink").push(e.to_string());
        }));
        let sink = uncaptured.clone();
        device.set_device_lost_callback(move |reason, message| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                sink.lock().expect("error sink").push(format!("device lost: {message}"));
            }
        });
        Ok(Ok(Gpu { device, queue, summary, limits, uncaptured, pipelines: Mutex::new(HashMap::new()) }))
    }

    /// The adapter the device was opened on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Runs `f` inside validation and out-of-memory error scopes and returns the first error
    /// either caught (or that escaped to the uncaptured handler) as [`Error::Gpu`].
    pub(crate) fn checked<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            return Err(Error::Gpu(format!(
                "{what}: out of GPU memory ({e}); use fewer rows or classes, or --device cpu"
            )));
        }
        if let Some(e) = v {
            return Err(Error::Gpu(format!("{what}: {e}")));
        }
        let mut escaped = self.uncaptured.lock().expect("error sink");
        if !escaped.is_empty() {
            let all = escaped.drain(..).collect::<Vec<_>>().join("; ");
            return Err(Error::Gpu(format!("{what}: {all}")));
        }
        Ok(out)
    }

    /// The compiled pipeline of `entry` in `source`, built once and cached. The cache lock is
    /// held while compiling: bind groups made for one pipeline's (shader-derived) layout are
    /// invalid with another compiled from the same source.
    pub(crate) fn kernel(&self, name: &'static str, source: &'static str, entry: &str) -> Result<Arc<Kernel>> {
        self.kernel_with(name, source, entry, &[])
    }

    /// As [`Gpu::kernel`], with values for the shader's `override` constants (each set of values
    /// is its own pipeline, so the driver compiles loops over them with constant bounds).
    ///
    /// Workgroup memory is not zero-initialised: every kernel writes its workgroup arrays
    /// before reading them, and the zeroing costs a pass over them per workgroup.
    pub(crate) fn kernel_with(
        &self,
        name: &'static str,
        source: &'static str,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<Kernel>> {
        let key = constants.iter().fold(name.to_string(), |k, (c, v)| format!("{k}/{c}={v}"));
        let mut cache = self.pipelines.lock().expect("pipeline cache");
        if let Some(k) = cache.get(&key) {
            return Ok(k.clone());
        }
        let kernel = self.checked(&format!("compiling kernel {key}"), || {
            let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(source)),
            });
            let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
            let layout = pipeline.get_bind_group_layout(0);
            Kernel { pipeline, layout }
        })?;
        let kernel = Arc::new(kernel);
        cache.insert(key, kernel.clone());
        Ok(kernel)
    }

    /// A bind group for `kernel`'s group 0: whole buffers at the given binding numbers.
    pub(crate) fn bind(&self, kernel: &Kernel, label: &str, buffers: &[(u32, &wgpu::Buffer)]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .map(|&(binding, b)| wgpu::BindGroupEntry { binding, resource: b.as_entire_binding() })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &kernel.layout,
            entries: &entries,
        })
    }

    /// Largest buffer this device binds as one storage array, in bytes.
    pub(crate) fn max_binding(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// A buffer of `size` bytes (at least 4) with the given usage.
    pub(crate) fn buffer(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4).next_multiple_of(4),
            usage,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer holding `data`, written in bounded pieces.
    pub(crate) fn storage_with<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buf = self.buffer(
            label,
            bytes.len() as u64,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        );
        self.write(&buf, 0, bytes);
        buf
    }

    /// Writes `bytes` at `offset`, submitting between pieces so staging memory stays bounded.
    pub(crate) fn write(&self, buf: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
        let pieces = bytes.len().div_ceil(UPLOAD_PIECE);
        for (i, piece) in bytes.chunks(UPLOAD_PIECE).enumerate() {
            self.queue.write_buffer(buf, offset + (i * UPLOAD_PIECE) as u64, piece);
            if pieces > 1 {
                self.queue.submit([]);
            }
        }
    }

    /// A uniform buffer holding `value`.
    pub(crate) fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Submits `encoder` (which must already copy what is wanted into the staging buffers),
    /// waits once, and returns the first `words` f32 values of each staging buffer.
    pub(crate) fn submit_and_read(
        &self,
        encoder: wgpu::CommandEncoder,
        staging: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<f32>>> {
        let index = self.queue.submit([encoder.finish()]);
        self.read_after(staging, index)
    }

    /// Waits for submission `index` (which must copy what is wanted into the staging buffers)
    /// and returns the first `words` f32 values of each staging buffer. Later submissions keep
    /// running.
    pub(crate) fn read_after(
        &self,
        staging: &[(&wgpu::Buffer, usize)],
        index: wgpu::SubmissionIndex,
    ) -> Result<Vec<Vec<f32>>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut waiting = 0;
        for (i, &(buf, words)) in staging.iter().enumerate() {
            if words > 0 {
                let tx = tx.clone();
                buf.slice(..(words * 4) as u64).map_async(wgpu::MapMode::Read, move |r| {
                    let _ = tx.send((i, r));
                });
                waiting += 1;
            }
        }
        self.wait_for(index)?;
        for _ in 0..waiting {
            match rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((_, Err(e))) => return Err(Error::Gpu(format!("reading results back: {e}"))),
                Err(_) => return Err(Error::Gpu("reading results back: the map request was dropped".into())),
            }
        }
        let mut out = Vec::with_capacity(staging.len());
        for &(buf, words) in staging {
            if words == 0 {
                out.push(Vec::new());
                continue;
            }
            let slice = buf.slice(..(words * 4) as u64);
            let values = {
                let view = slice.get_mapped_range().map_err(|e| Error::Gpu(format!("reading results back: {e:?}")))?;
                bytemuck::cast_slice::<u8, f32>(&view).to_vec()
            };
            buf.unmap();
            out.push(values);
        }
        Ok(out)
    }

    /// Blocks until submission `index` has finished on the device.
    pub(crate) fn wait_for(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None })
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))
    }

    /// A MAP_READ buffer for `words` f32 values.
    pub(crate) fn staging(&self, label: &str, words: usize) -> wgpu::Buffer {
        self.buffer(label, (words * 4) as u64, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST)
    }

    pub(crate) fn encoder(&self) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("segmix") })
    }

    /// Splits `groups` workgroups into an (x, y) grid within the per-dimension limit.
    pub(crate) fn grid(&self, groups: usize) -> (u32, u32) {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as usize;
        let gx = groups.clamp(1, max);
        (gx as u32, groups.div_ceil(gx).max(1) as u32)
    }
}
