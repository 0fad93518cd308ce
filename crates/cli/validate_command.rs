use delink_model::Dataset;
use delink_policy::Action;

use crate::{ConfigArgs, load_settings};

/// Arguments of `delink validate`.
#[derive(clap::Args, Debug)]
pub(crate) struct ValidateArgs {
    #[command(flatten)]
    settings: ConfigArgs,
}

pub(crate) fn run(args: ValidateArgs) -> anyhow::Result<()> {
    let (config, plan) = load_settings(&args.settings)?;
    println!(
        "configuration ok (data directory {})",
        config.data_dir.display()
    );
    for dataset in Dataset::ALL {
        println!("{}/ columns:", dataset.as_str());
        for column in &plan.dataset(dataset).columns {
            let action = match &column.action {
                Action::Keep { domain: None } => "keep".to_owned(),
                Action::Keep {
                    domain: Some(domain),
                } => format!("keep when {}", domain.describe()),
                Action::Pseudonymise { scope, .. } => {
                    format!("pseudonymise under {} key", scope.as_str())
                }
                Action::Grid { grid } => format!("floor to grid {grid}"),
                Action::Truncate { unit } => format!("truncate to {unit:?}").to_lowercase(),
            };
            println!(
                "  {:<24} <- {:<28} {action}",
                column.name,
                column.field.path()
            );
        }
    }
    Ok(())
}
