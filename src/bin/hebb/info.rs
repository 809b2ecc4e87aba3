//! `hebb info`: every adapter, its features, limits and device policy.

use std::process::ExitCode;

use anyhow::{Result, bail};

use hebb::gpu::{AdapterChoice, feature_names, list_adapters};

pub fn info(choice: &AdapterChoice) -> Result<ExitCode> {
    let adapters = list_adapters(choice)?;
    if adapters.is_empty() {
        bail!(hebb::HebbError::NoAdapter {
            filter: String::new()
        });
    }
    for (i, adapter) in adapters.iter().enumerate() {
        let info = adapter.get_info();
        let limits = adapter.limits();
        println!("[{i}] {}", info.name);
        println!("    backend:      {:?}", info.backend);
        println!("    device type:  {:?}", info.device_type);
        println!("    driver:       {} {}", info.driver, info.driver_info);
        println!(
            "    features:     {}",
            match feature_names(adapter.features()).join(", ") {
                s if s.is_empty() => "(none of the optional ones)".to_string(),
                s => s,
            }
        );
        println!(
            "    subgroups:    {}..{}",
            info.subgroup_min_size, info.subgroup_max_size
        );
        println!(
            "    limits:       max_buffer_size {} B, max_storage_buffer_binding_size {} B,",
            limits.max_buffer_size, limits.max_storage_buffer_binding_size
        );
        println!(
            "                  workgroup storage {} B, invocations/workgroup {}, workgroup size {}x{}x{}, workgroups/dim {}",
            limits.max_compute_workgroup_storage_size,
            limits.max_compute_invocations_per_workgroup,
            limits.max_compute_workgroup_size_x,
            limits.max_compute_workgroup_size_y,
            limits.max_compute_workgroup_size_z,
            limits.max_compute_workgroups_per_dimension
        );
        let policy = hebb::gpu::DevicePolicy::new(&info, choice.policy)?;
        for (j, line) in policy.describe().iter().enumerate() {
            println!("    {:<14}{line}", if j == 0 { "policy:" } else { "" });
        }
    }
    Ok(ExitCode::SUCCESS)
}
