//! Where `cwlite ctl` gets a configuration from: the stock default, a local file, or an SSM
//! Parameter Store parameter.
//!
//! Owns reading those sources, and nothing else: it neither writes the configuration
//! directory (`staging`) nor judges what it read (`config`).

use super::{CtlError, Location, Mode};
use crate::aws::ssm::ParameterStore;
use crate::config::Layout;

/// The stock agent's default configuration on Linux (`translator/config/defaultConfig.go`):
/// memory and disk use, run as `cwagent`; on EC2 with the instance's dimensions as well.
pub fn default_config(mode: Mode) -> String {
    let ec2 = if mode == Mode::Ec2 {
        r#",
    "append_dimensions": {
      "ImageId": "${aws:ImageId}",
      "InstanceId": "${aws:InstanceId}",
      "InstanceType": "${aws:InstanceType}",
      "AutoScalingGroupName": "${aws:AutoScalingGroupName}"
    }"#
    } else {
        ""
    };
    format!(
        r#"{{
  "agent": {{
    "run_as_user": "cwagent"
  }},
  "metrics": {{
    "metrics_collected": {{
      "mem": {{
        "measurement": ["mem_used_percent"]
      }},
      "disk": {{
        "measurement": ["used_percent"],
        "resources": ["*"]
      }}
    }}{ec2}
  }}
}}
"#
    )
}

/// The bytes of the configuration a location names (not `all`, which names none).
///
/// # Errors
/// The file cannot be read, or the parameter cannot be fetched.
pub fn fetch(location: &Location, mode: Mode, layout: &Layout) -> Result<Vec<u8>, CtlError> {
    match location {
        Location::Default => Ok(default_config(mode).into_bytes()),
        Location::File(path) => std::fs::read(path).map_err(|source| CtlError::Io {
            what: format!("cannot read file:{}", path.display()),
            source,
        }),
        Location::Ssm(name) => from_parameter_store(name, layout).map(String::into_bytes),
        Location::All => Err(CtlError::Usage(
            "\"all\" names no configuration to fetch".into(),
        )),
    }
}

/// `GetParameter` through the `ssm` endpoint, with the region, credentials, proxy and CA of
/// the layout's common-config, as the stock downloader reads them (the JSON is not known yet).
fn from_parameter_store(name: &str, layout: &Layout) -> Result<String, CtlError> {
    crate::aws::ssm::block_on(name, async {
        ParameterStore::for_layout(layout, name, None)
            .await?
            .get(name)
            .await
    })
    .map_err(CtlError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_json_and_only_ec2_gets_the_instance_dimensions() {
        let on_premise: serde_json::Value =
            serde_json::from_str(&default_config(Mode::OnPremise)).unwrap();
        let ec2: serde_json::Value = serde_json::from_str(&default_config(Mode::Ec2)).unwrap();
        assert_eq!(on_premise["agent"]["run_as_user"], "cwagent");
        assert!(on_premise["metrics"].get("append_dimensions").is_none());
        assert_eq!(
            ec2["metrics"]["append_dimensions"]["InstanceId"],
            "${aws:InstanceId}"
        );
        assert_eq!(
            ec2["metrics"]["metrics_collected"],
            on_premise["metrics"]["metrics_collected"]
        );
    }
}
