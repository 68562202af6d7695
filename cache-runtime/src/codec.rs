//! Encoding and decoding of cached values: JSON through serde_json.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes a value for storage.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(value)
}

/// Decodes stored bytes straight into `T`; any mismatch is an error the caller turns into a miss.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_shapes() {
        let bytes = encode(&(1u32, "a")).unwrap();
        assert_eq!(
            decode::<(u32, String)>(&bytes).unwrap(),
            (1, "a".to_string())
        );
        assert!(decode::<u32>(&bytes).is_err());
        assert!(decode::<u32>(b"\xff\x00garbage").is_err());
        assert!(decode::<Vec<u8>>(b"[1,2").is_err());
    }
}
