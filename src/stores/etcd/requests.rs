//! The pieces of the etcd requests the store and its places send: the comparisons that guard a
//! transaction, the operations inside it, the record its answer carries, key ranges, and the
//! read that tells whether keys of a range exist. They live apart from the store so that the
//! release watch and the places build the same requests the store does.

use super::client::Client;
use crate::lock::StoreError;
use crate::proto::etcd::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request as Op,
    response_op::Response as OpAnswer,
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnResponse,
};
use crate::proto::etcd::mvccpb::KeyValue;

/// Whether any key of `[start, end)` exists (the key `start` alone for an empty `end`, as
/// etcd reads a range): a read, no write.
pub(crate) async fn any_in(client: &Client, start: &[u8], end: &[u8]) -> Result<bool, StoreError> {
    let answer = client
        .range(RangeRequest {
            key: start.to_vec(),
            range_end: end.to_vec(),
            count_only: true,
            ..RangeRequest::default()
        })
        .await?;
    Ok(answer.count > 0)
}

pub(crate) fn compare(path: &[u8], target: CompareTarget, value: TargetUnion) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: target as i32,
        key: path.to_vec(),
        target_union: Some(value),
        range_end: Vec::new(),
    }
}

/// No key of `[start, end)` was written after `revision`: each existing key's mod revision is
/// at most `revision` (etcd compares a range key by key, an empty one as one zero record).
pub(crate) fn unwritten_since(start: &[u8], end: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Less as i32,
        range_end: end.to_vec(),
        ..compare(
            start,
            CompareTarget::Mod,
            TargetUnion::ModRevision(revision + 1),
        )
    }
}

/// A transaction's revision: the revision its writes created keys at.
pub(crate) fn revision_of(answer: &TxnResponse) -> i64 {
    answer.header.as_ref().map_or(0, |h| h.revision)
}

/// The key does not exist.
pub(crate) fn absent(path: &[u8]) -> Compare {
    compare(path, CompareTarget::Create, TargetUnion::CreateRevision(0))
}

/// No key of `[start, end)` exists: etcd compares an empty range as one zero record.
pub(crate) fn none_in(start: &[u8], end: &[u8]) -> Compare {
    Compare {
        range_end: end.to_vec(),
        ..absent(start)
    }
}

pub(crate) fn put(path: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: path.to_vec(),
            value: value.to_vec(),
            lease,
            prev_kv: true,
        })),
    }
}

pub(crate) fn read(path: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: path.to_vec(),
            ..RangeRequest::default()
        })),
    }
}

/// A read of `[start, end)` inside a transaction; with `count_only`, of how many keys it holds.
pub(crate) fn read_range(start: &[u8], end: &[u8], count_only: bool) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: start.to_vec(),
            range_end: end.to_vec(),
            count_only,
            ..RangeRequest::default()
        })),
    }
}

pub(crate) fn delete(path: &[u8]) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: path.to_vec(),
        range_end: Vec::new(),
        prev_kv: true,
    }
}

/// The first record an operation of a transaction returned: the key as it was before a put
/// or delete, or as it is for a read.
pub(crate) fn first_record(answer: TxnResponse) -> Option<KeyValue> {
    match answer.responses.into_iter().next()?.response? {
        OpAnswer::ResponseRange(range) => range.kvs.into_iter().next(),
        OpAnswer::ResponsePut(put) => put.prev_kv,
        OpAnswer::ResponseDeleteRange(deleted) => deleted.prev_kvs.into_iter().next(),
    }
}

/// Every record the first operation of a transaction deleted (`delete` with a range).
pub(crate) fn first_records(answer: TxnResponse) -> Vec<KeyValue> {
    match answer
        .responses
        .into_iter()
        .next()
        .and_then(|op| op.response)
    {
        Some(OpAnswer::ResponseDeleteRange(deleted)) => deleted.prev_kvs,
        _ => Vec::new(),
    }
}

/// The reads of a transaction of reads, in order (`read_range`).
pub(crate) fn ranges(answer: TxnResponse) -> Vec<RangeResponse> {
    let ranges = answer
        .responses
        .into_iter()
        .filter_map(|op| match op.response? {
            OpAnswer::ResponseRange(range) => Some(range),
            _ => None,
        });
    ranges.collect()
}

/// The end of the range of keys starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // all keys from the prefix on
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_end(b"dlock/"), b"dlock0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), [0]);
    }
}
