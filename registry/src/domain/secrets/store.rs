//! `SqlSecretStore`: the plugins' secrets (`warden:plugin/secrets`) read
//! from the control plane's database and decrypted with the server's key
//! at each read, so a value set on any replica is what the next read sees.

use super::{self as secrets, SecretsKey};
use crate::db::Db;
use async_trait::async_trait;
use warden_host::{SecretError, SecretStore};

/// A [`SecretStore`] over the `secrets` table. Namespaces are `org/plugin`.
#[derive(Clone, Debug)]
pub struct SqlSecretStore {
    db: Db,
    key: SecretsKey,
}

impl SqlSecretStore {
    /// Reads from `db`, decrypting with `key`.
    pub fn new(db: Db, key: SecretsKey) -> SqlSecretStore {
        SqlSecretStore { db, key }
    }
}

#[async_trait]
impl SecretStore for SqlSecretStore {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<String>, SecretError> {
        let Some((org, plugin)) = namespace.split_once('/') else {
            return Ok(None);
        };
        match secrets::value(&self.db, &self.key, org, plugin, name).await {
            Ok(None) => Ok(None),
            Ok(Some(Ok(value))) => Ok(Some(value)),
            Ok(Some(Err(error))) => {
                tracing::error!(
                    plugin = namespace,
                    secret = name,
                    "secret unreadable: {error}"
                );
                Err(SecretError::Unavailable(format!(
                    "secret {name} is unreadable: {error}"
                )))
            }
            Err(error) => {
                tracing::warn!("secret store: {error}");
                Err(SecretError::Unavailable(
                    "the secret store is unavailable".into(),
                ))
            }
        }
    }
}
