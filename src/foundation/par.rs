//! Deterministic parallel reductions.

/// Reduces `items` in a balanced binary tree whose shape depends only on `items.len()`, so a
/// floating-point result does not depend on how rayon schedules the work. `items` must not be
/// empty.
pub fn tree_reduce<I: Send, T: Send>(
    items: &mut [I],
    leaf: &(dyn Fn(&mut I) -> T + Sync),
    merge: &(dyn Fn(T, T) -> T + Sync),
) -> T {
    assert!(!items.is_empty(), "tree_reduce over no items");
    if items.len() == 1 {
        return leaf(&mut items[0]);
    }
    let mid = items.len() / 2;
    let (a, b) = items.split_at_mut(mid);
    let (x, y) = rayon::join(|| tree_reduce(a, leaf, merge), || tree_reduce(b, leaf, merge));
    merge(x, y)
}
