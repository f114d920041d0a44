//! `--device` (shared by every command that runs kernels) and `segmix devices`.

use clap::Args;

use segmix::backend::{AnyBackend, DeviceChoice};
#[cfg(feature = "gpu")]
use segmix::foundation::gpu::list_adapters;

use super::{Global, choice};

/// Where the kernels run.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// auto: a hardware GPU if there is one, else the CPU (never a software GPU such as
    /// lavapipe, which is slower than the CPU backend); gpu: any GPU adapter, software ones
    /// included, and an error if there is none; cpu: the CPU backend. `segmix devices` lists
    /// the adapters.
    #[arg(long, value_parser = choice::<DeviceChoice>(), default_value = "auto")]
    pub device: DeviceChoice,
}

/// Opens the backend `--device` asks for; prints why the CPU runs when auto found no GPU.
pub fn open_backend(a: &DeviceArgs, g: &Global) -> anyhow::Result<AnyBackend> {
    let backend = AnyBackend::select(a.device)?;
    print_note(&backend, g);
    Ok(backend)
}

/// Prints the backend's note (why the CPU runs), once.
pub fn print_note(backend: &AnyBackend, g: &Global) {
    if let Some(note) = backend.take_note()
        && !g.quiet
    {
        eprintln!("note: {note}");
    }
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "gpu")]
fn mib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

#[cfg(not(feature = "gpu"))]
pub fn run(_: DevicesArgs, _g: &Global) -> anyhow::Result<()> {
    anyhow::bail!("this segmix was built without GPU support (the `gpu` cargo feature): it runs on the CPU")
}

#[cfg(feature = "gpu")]
pub fn run(a: DevicesArgs, _g: &Global) -> anyhow::Result<()> {
    let (adapters, auto) = list_adapters();
    if a.json {
        let list: Vec<serde_json::Value> = adapters
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name, "backend": s.backend, "type": s.device_type, "driver": s.driver,
                    "software": s.software,
                    "limits": {
                        "max_storage_buffer_binding_size": s.max_storage_buffer_binding_size,
                        "max_buffer_size": s.max_buffer_size,
                        "max_compute_workgroup_storage_size": s.max_compute_workgroup_storage_size,
                        "max_compute_invocations_per_workgroup": s.max_compute_invocations_per_workgroup,
                        "max_compute_workgroups_per_dimension": s.max_compute_workgroups_per_dimension,
                    },
                })
            })
            .collect();
        let out = serde_json::json!({
            "adapters": list,
            "auto": auto.map_or(serde_json::json!("cpu"), |i| serde_json::json!(i)),
            "gpu": if adapters.is_empty() { serde_json::json!(null) } else { serde_json::json!(0) },
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if adapters.is_empty() {
        println!("no GPU adapter found (no Vulkan, Metal or DX12 driver answered)");
    }
    for (i, s) in adapters.iter().enumerate() {
        let tag = match (Some(i) == auto, i == 0) {
            (true, _) => "  ← --device auto and gpu",
            (false, true) => "  ← --device gpu (software: auto skips it)",
            _ => "",
        };
        println!("[{i}] {}{tag}", s.label());
        if !s.driver.is_empty() {
            println!("    driver: {}", s.driver);
        }
        println!(
            "    limits: storage binding {}, buffer {}, workgroup memory {} KiB, {} invocations per workgroup, {} workgroups per dimension",
            mib(s.max_storage_buffer_binding_size),
            mib(s.max_buffer_size),
            s.max_compute_workgroup_storage_size / 1024,
            s.max_compute_invocations_per_workgroup,
            s.max_compute_workgroups_per_dimension
        );
    }
    match auto {
        Some(i) => println!("--device auto takes [{i}]"),
        None => println!("--device auto runs on the CPU backend"),
    }
    Ok(())
}
