//! A plugin that uses every grantable capability: kv, config and outgoing HTTP.

wit_bindgen::generate!({ path: "wit", world: "capabilities" });

use warden_sdk::kv;

struct Capabilities;

impl Guest for Capabilities {
    fn kv_set(key: String, value: String) -> Result<(), String> {
        kv::set(&key, value).map_err(|e| e.to_string())
    }

    fn kv_get(key: String) -> Result<Option<String>, String> {
        kv::get_string(&key).map_err(|e| e.to_string())
    }

    fn kv_delete(key: String) -> Result<bool, String> {
        kv::delete(&key).map_err(|e| e.to_string())
    }

    fn kv_list(prefix: String) -> Result<Vec<String>, String> {
        kv::list_keys(&prefix).map_err(|e| e.to_string())
    }

    fn kv_set_size(key: String, bytes: u32) -> Result<(), String> {
        kv::set(&key, vec![b'v'; bytes as usize]).map_err(|e| e.to_string())
    }

    fn config_get(key: String) -> Option<String> {
        warden_sdk::config::get(&key)
    }

    fn config_all() -> Vec<(String, String)> {
        warden_sdk::config::all()
    }

    fn http_get(url: String) -> Result<(u16, String), String> {
        let response = warden_sdk::http::get(&url).map_err(|e| e.to_string())?;
        Ok((response.status, response.text()))
    }
}

export!(Capabilities);
