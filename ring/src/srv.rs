//! RFC 2782 ordering of SRV records, for services with `balance = "srv"`:
//! not sharded, so any instance will do, chosen the way DNS intends.
//!
//! Lowest priority value first; within one priority, the RFC's weighted
//! random shuffle: weight-0 records are placed at the beginning of the
//! unordered list, a number from `0..=total weight` is drawn, and the first
//! record whose running sum of weights reaches it comes next. A record's
//! chance is thus its weight over the remaining weights, and a weight-0
//! record's is `1 / (total + 1)`.

/// Priority and weight of one SRV record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrvWeight {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share of selections within a priority.
    pub weight: u16,
}

/// The order in which to try `records`: indexes into it, each once.
///
/// `random(bound)` must return a uniformly distributed number in
/// `0..=bound`; taking it as a parameter keeps this module pure and its tests
/// deterministic.
pub fn rfc2782_order(records: &[SrvWeight], mut random: impl FnMut(u32) -> u32) -> Vec<usize> {
    let mut order = Vec::with_capacity(records.len());
    let mut by_priority: Vec<usize> = (0..records.len()).collect();
    by_priority.sort_by_key(|&index| records[index].priority);

    for group in by_priority.chunk_by(|&a, &b| records[a].priority == records[b].priority) {
        // RFC 2782: weight-0 records at the beginning of the unordered list.
        let mut remaining: Vec<usize> = group.to_vec();
        remaining.sort_by_key(|&index| records[index].weight != 0);
        while !remaining.is_empty() {
            let total: u32 = remaining
                .iter()
                .map(|&index| u32::from(records[index].weight))
                .sum();
            let pick = random(total).min(total);
            let mut running = 0u32;
            let chosen = remaining
                .iter()
                .position(|&index| {
                    running += u32::from(records[index].weight);
                    running >= pick
                })
                .unwrap_or(remaining.len() - 1);
            order.push(remaining.remove(chosen));
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(items: &[(u16, u16)]) -> Vec<SrvWeight> {
        items
            .iter()
            .map(|&(priority, weight)| SrvWeight { priority, weight })
            .collect()
    }

    #[test]
    fn lower_priority_comes_first() {
        let records = weights(&[(20, 1), (10, 1), (30, 1), (10, 1)]);
        let order = rfc2782_order(&records, |_| 0);
        assert_eq!(order.len(), 4);
        assert_eq!(records[order[0]].priority, 10);
        assert_eq!(records[order[1]].priority, 10);
        assert_eq!(order[2], 0);
        assert_eq!(order[3], 2);
    }

    #[test]
    fn weights_share_first_picks() {
        // A simple deterministic generator stands in for randomness.
        let records = weights(&[(0, 1), (0, 3)]);
        let mut state = 12345u64;
        let mut first = [0u32; 2];
        for _ in 0..40_000 {
            let order = rfc2782_order(&records, |bound| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % (u64::from(bound) + 1)) as u32
            });
            first[order[0]] += 1;
        }
        // Picks 0..=4: record 0 wins on 0 and 1 (its running sum is 1),
        // record 1 on 2, 3, 4: 2/5 and 3/5.
        let share = f64::from(first[1]) / 40_000.0;
        assert!((share - 0.6).abs() < 0.02, "share {share}");
    }

    #[test]
    fn zero_weights_are_still_ordered() {
        let records = weights(&[(0, 0), (0, 0), (0, 5)]);
        let mut order = rfc2782_order(&records, |bound| bound);
        assert_eq!(order[0], 2);
        order.sort_unstable();
        assert_eq!(order, vec![0, 1, 2]);
    }
}
