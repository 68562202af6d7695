//! What only a Redis Cluster needs: its primaries, and a command sent to one node of them
//! (`SCAN` is per node, so a full clear visits each).

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, RedisResult};

use super::link::Link;

/// A node by address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Node {
    host: String,
    port: u16,
}

/// The primaries that serve slots now, from `CLUSTER NODES` (one line per node:
/// `id host:port@bus[,hostname] flags primary-id ... slots`).
pub(super) async fn primaries(link: &mut Link) -> RedisResult<Vec<Node>> {
    let text: String = redis::cmd("CLUSTER").arg("NODES").query_async(link).await?;
    Ok(parse_primaries(&text))
}

fn parse_primaries(text: &str) -> Vec<Node> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let serves = flags.split(',').any(|f| f == "master")
                && !flags.split(',').any(|f| f == "fail" || f == "noaddr")
                && fields.len() > 8;
            if !serves {
                return None;
            }
            let addr = fields.get(1)?.split(['@', ',']).next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some(Node {
                host: host.to_owned(),
                port: port.parse().ok()?,
            })
        })
        .collect()
}

/// `cmd` on `node` (`None`, or one Redis: where the connection leads).
pub(super) async fn on<T: FromRedisValue>(
    link: &mut Link,
    node: Option<&Node>,
    cmd: &Cmd,
) -> RedisResult<T> {
    match (link, node) {
        (Link::Cluster(conn), Some(node)) => {
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: node.host.clone(),
                port: node.port,
            });
            let value = conn.route_command(cmd.clone(), routing).await?;
            T::from_redis_value(value).map_err(Into::into)
        }
        (link, _) => cmd.query_async(link).await,
    }
}

/// Sends `cmds` and returns each one's reply: in one pipeline on one Redis, one by one on a
/// cluster, where their keys may be in different slots.
pub(super) async fn each<T: FromRedisValue>(
    link: &mut Link,
    cmds: Vec<Cmd>,
) -> RedisResult<Vec<T>> {
    if !link.is_cluster() {
        let mut pipe = redis::pipe();
        cmds.into_iter().for_each(|cmd| {
            pipe.add_command(cmd);
        });
        return pipe.query_async(link).await;
    }
    let mut replies = Vec::with_capacity(cmds.len());
    for cmd in &cmds {
        replies.push(cmd.query_async(link).await?);
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_serving_slots_are_found() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,host master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected 10923-16383
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 127.0.0.1:7004@17004 master - 0 0 5 connected
";
        let ports: Vec<u16> = parse_primaries(text).iter().map(|n| n.port).collect();
        assert_eq!(ports, [7000, 7001]);
    }
}
