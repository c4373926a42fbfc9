//! `shop migrate`: applies every service's migrations to the databases `shop up` would use,
//! and stops.

use anyhow::Result;

use crate::app::AppOptions;
use crate::config::component::database_variable;
use crate::config::variables::env_var_name;

/// Applies every service's migrations to the databases `shop up` would use (provisioning each
/// service's role with `--database-url`), and stops: the step a deployment on Spin needs before
/// `spin up`. `print_urls`: also print the variable that gives each service its own login.
pub async fn run(options: &AppOptions, print_urls: bool) -> Result<()> {
    let data = crate::app::load_data(options).await?;
    for config in &data.configs {
        match &config.postgres_database {
            Some(url) if print_urls => {
                println!("{}={url}", env_var_name(&database_variable(&config.id)))
            }
            // stdout stays a list of variables for the shell to read.
            _ if print_urls => eprintln!("migrated `{}`", config.id),
            _ => println!("migrated `{}`", config.id),
        }
    }
    Ok(())
}
