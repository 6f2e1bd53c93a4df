//! `envship rollback`: point `current` back at an earlier version (the one the live version
//! replaced, per the deployment log, or one named) and record it.

use crate::{
    live::{current_version, repair_current, switch_current},
    record::{self, Record},
    DeployError, DeployLock, DeployOutcome, RollbackOptions, CURRENT,
};

/// Switch `ROOT/NAME/current` back (to `opts.to`, else to the version the current one
/// replaced, per the deployment log) and record it.
pub fn rollback(opts: &RollbackOptions) -> Result<DeployOutcome, DeployError> {
    let env_dir = opts.root.join(&opts.name);
    let lock = if opts.dry_run {
        None
    } else {
        Some(DeployLock::acquire(&opts.root, || {})?)
    };
    let mut actions = Vec::new();
    if !opts.dry_run {
        repair_current(&env_dir, &mut actions)?;
    }
    let current = current_version(&opts.root, &opts.name)?;
    let target = match &opts.to {
        Some(t) => t.clone(),
        None => {
            let cur = current.clone().ok_or_else(|| DeployError::Rollback {
                name: opts.name.clone(),
                reason: "nothing is deployed (no `current`)".into(),
            })?;
            let records = record::read(&opts.root)?;
            records
                .iter()
                .rev()
                .filter(|r| r.name == opts.name && r.version == cur && r.result == "success")
                // A forced redeploy of the same version names itself as previous.
                .find_map(|r| r.previous.clone().filter(|p| *p != cur))
                .ok_or_else(|| DeployError::Rollback {
                    name: opts.name.clone(),
                    reason: format!("the log records no version before {cur}"),
                })?
        }
    };
    let dest = env_dir.join(&target);
    if !dest.is_dir() || target.starts_with('.') || target.contains('/') || target == CURRENT {
        return Err(DeployError::Rollback {
            name: opts.name.clone(),
            reason: format!("{} is not a deployed version", dest.display()),
        });
    }
    if current.as_deref() == Some(target.as_str()) {
        return Err(DeployError::Rollback {
            name: opts.name.clone(),
            reason: format!("{target} is already current"),
        });
    }
    actions.push(format!(
        "switch {} from {} to {target}",
        env_dir.join(CURRENT).display(),
        current.as_deref().unwrap_or("(none)")
    ));
    if !opts.dry_run {
        switch_current(&env_dir, &target)?;
        let mut rec = Record::now("rollback", &opts.name, &target, "success");
        rec.previous = current.clone();
        rec.ticket = opts.ticket.clone();
        record::append(&opts.root, &rec)?;
        actions.push(format!(
            "recorded in {}",
            record::log_path(&opts.root).display()
        ));
    } else {
        actions.push(format!(
            "append a record to {}",
            record::log_path(&opts.root).display()
        ));
    }
    drop(lock);
    Ok(DeployOutcome {
        name: opts.name.clone(),
        version: target,
        sha256: String::new(),
        path: dest,
        previous: current,
        actions,
        test_log: None,
        dry_run: opts.dry_run,
        diff: None,
        trust: None,
    })
}
