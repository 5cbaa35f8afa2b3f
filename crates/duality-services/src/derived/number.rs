//! Numbers as derived views read them: a total order exact across JSON
//! integers and floats ([`Num`]), and sums that documents can enter and
//! leave in any order without leaving a rounding error behind ([`Sum`]).
//!
//! A group's minimum or maximum is one of its documents' own numbers, as
//! that document wrote it (`3` stays `3`, `2.50` is `2.5`). Numbers compare
//! by value, exactly (`9007199254740993` is above `9007199254740992.0`);
//! an integer and a float of the same value are both kept, the integer
//! ordered first, so the order is total and does not depend on which
//! document came first.
//!
//! A sum of integers is an integer, exact (kept in an `i128`). A sum with
//! at least one float is the float nearest to the exact sum of its terms
//! (kept as Shewchuk's non-overlapping partials, the algorithm of Python's
//! `math.fsum`, with CPython's correctly rounded final step), so removing a
//! term takes it back exactly and the total is the same whatever the
//! order of the changes: a derived view rebuilt from the collection
//! equals the one kept write by write. Terms of 2^900 or more are summed
//! apart, scaled down by 2^600, so that no partial overflows; a total past
//! the largest float is shown as that float (or its negative).

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// A JSON number, ordered exactly (see the module docs).
#[derive(Debug, Clone, Copy)]
pub enum Num {
    /// An integer (JSON integers are `i64` or `u64`).
    Int(i128),
    /// A float, always finite.
    Float(f64),
}

impl Num {
    /// The number `value` holds, if it is a number.
    pub fn of(value: &Value) -> Option<Num> {
        let Value::Number(n) = value else {
            return None;
        };
        if let Some(i) = n.as_i64() {
            Some(Num::Int(i.into()))
        } else if let Some(u) = n.as_u64() {
            Some(Num::Int(u.into()))
        } else {
            n.as_f64().filter(|f| f.is_finite()).map(Num::Float)
        }
    }

    /// The number as JSON: an integer as an integer while it fits in 64
    /// bits, else (and a float) as the nearest float.
    pub fn to_json(self) -> Value {
        match self {
            Num::Int(i) => match (i64::try_from(i), u64::try_from(i)) {
                (Ok(i), _) => Value::from(i),
                (_, Ok(u)) => Value::from(u),
                _ => float(i as f64),
            },
            Num::Float(f) => float(f),
        }
    }
}

/// A finite float as JSON; never null (a total past the largest float is
/// capped before it gets here).
fn float(f: f64) -> Value {
    let f = if f.is_finite() {
        f
    } else {
        f64::MAX.copysign(f)
    };
    Number::from_f64(f).map_or(Value::from(0), Value::Number)
}

/// Compares an integer and a float exactly; at the same value, the
/// integer first.
fn int_float(i: i128, f: f64) -> Ordering {
    exact(i, f).then(Ordering::Less)
}

/// Compares an integer and a float by their values, exactly.
fn exact(i: i128, f: f64) -> Ordering {
    let rounded = i as f64;
    match rounded.total_cmp(&f) {
        Ordering::Equal => {}
        // Rounding is monotone and `f` is a float: if `i` rounds below
        // (above) `f`, it is below (above) it.
        other if rounded != f => return other,
        // -0.0 and 0.0.
        _ => {}
    }
    // `f` equals an integer-valued float of magnitude at most 2^64: exact
    // as an i128.
    i.cmp(&(f as i128))
}

impl Ord for Num {
    fn cmp(&self, other: &Num) -> Ordering {
        match (*self, *other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Float(a), Num::Float(b)) => a.total_cmp(&b),
            (Num::Int(a), Num::Float(b)) => int_float(a, b),
            (Num::Float(a), Num::Int(b)) => int_float(b, a).reverse(),
        }
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Num) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Num {
    fn eq(&self, other: &Num) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Num {}

/// A number ordered by its value alone: an integer and a float of the
/// same value, and -0.0 and 0.0, are equal (how `top` ranks groups, whose
/// ties go by key).
#[derive(Debug, Clone, Copy)]
pub struct ByValue(pub Num);

impl Ord for ByValue {
    fn cmp(&self, other: &ByValue) -> Ordering {
        match (self.0, other.0) {
            (Num::Float(a), Num::Float(b)) if a == b => Ordering::Equal,
            (Num::Int(a), Num::Float(b)) => exact(a, b),
            (Num::Float(a), Num::Int(b)) => exact(b, a).reverse(),
            (a, b) => a.cmp(&b),
        }
    }
}

impl PartialOrd for ByValue {
    fn partial_cmp(&self, other: &ByValue) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ByValue {
    fn eq(&self, other: &ByValue) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ByValue {}

/// Terms at least this large are summed apart (see the module docs).
const BIG: f64 = 8.452712498170644e270; // 2^900
/// How far big terms are scaled down: 2^-600, and back up: 2^600.
const DOWN: f64 = 2.409919865102884e-181;
const UP: f64 = 4.149515568880993e180;

/// A sum of numbers that terms can leave exactly (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sum {
    int: i128,
    /// How many float terms the sum holds: with none it is an integer.
    floats: u64,
    /// Float terms below [`BIG`], as non-overlapping partials.
    small: Vec<f64>,
    /// Float terms of [`BIG`] or more, scaled by 2^-600.
    big: Vec<f64>,
}

impl Sum {
    /// Adds a term.
    pub fn add(&mut self, n: Num) {
        self.step(n, false);
    }

    /// Takes back a term added before.
    pub fn remove(&mut self, n: Num) {
        self.step(n, true);
    }

    fn step(&mut self, n: Num, back: bool) {
        match n {
            Num::Int(i) => self.int += if back { -i } else { i },
            Num::Float(f) => {
                let f = if back { -f } else { f };
                self.floats = if back {
                    self.floats.saturating_sub(1)
                } else {
                    self.floats + 1
                };
                if f.abs() >= BIG {
                    grow(&mut self.big, f * DOWN);
                } else {
                    grow(&mut self.small, f);
                }
            }
        }
    }

    /// The total: an integer if every term is one, else the float nearest
    /// to the exact sum.
    pub fn value(&self) -> Num {
        if self.floats == 0 {
            return Num::Int(self.int);
        }
        let mut parts = self.small.clone();
        for part in int_parts(self.int) {
            grow(&mut parts, part);
        }
        if !self.big.is_empty() {
            let big = round(&self.big);
            if !(big * UP).is_finite() {
                return Num::Float(f64::MAX.copysign(big));
            }
            for part in &self.big {
                grow(&mut parts, part * UP);
            }
        }
        let total = round(&parts);
        // An exact zero is shown as 0.0, never -0.0.
        Num::Float(if total == 0.0 { 0.0 } else { total })
    }
}

/// Adds `x` to non-overlapping `partials` (Shewchuk), keeping them so.
fn grow(partials: &mut Vec<f64>, mut x: f64) {
    let mut kept = 0;
    for j in 0..partials.len() {
        let mut y = partials[j];
        if x.abs() < y.abs() {
            std::mem::swap(&mut x, &mut y);
        }
        let hi = x + y;
        let lo = y - (hi - x);
        if lo != 0.0 {
            partials[kept] = lo;
            kept += 1;
        }
        x = hi;
    }
    partials.truncate(kept);
    if x != 0.0 {
        partials.push(x);
    }
}

/// The float nearest to the exact sum of `partials` (increasing
/// magnitude, non-overlapping), ties to even: CPython's `math.fsum`.
fn round(partials: &[f64]) -> f64 {
    let mut n = partials.len();
    if n == 0 {
        return 0.0;
    }
    n -= 1;
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        let yr = x - hi;
        if y == yr {
            hi = x;
        }
    }
    hi
}

/// An `i128` as three floats, each exact, whose exact sum it is.
fn int_parts(i: i128) -> [f64; 3] {
    const MASK: i128 = (1 << 43) - 1;
    const P43: f64 = 8796093022208.0; // 2^43
    const P86: f64 = 7.737125245533627e25; // 2^86
    [
        (i & MASK) as f64,
        ((i >> 43) & MASK) as f64 * P43,
        (i >> 86) as f64 * P86,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn num(v: Value) -> Num {
        Num::of(&v).unwrap()
    }

    #[test]
    fn the_constants_are_the_powers_of_two_they_say() {
        assert_eq!(BIG, 2f64.powi(900));
        assert_eq!(DOWN, 2f64.powi(-600));
        assert_eq!(UP, 2f64.powi(600));
        assert_eq!(int_parts(1 << 100).iter().sum::<f64>(), 2f64.powi(100));
    }

    #[test]
    fn numbers_order_exactly_across_integers_and_floats() {
        let ordered = [
            json!(-1e300),
            json!(-3),
            json!(-2.5),
            json!(0),
            json!(-0.0),
            json!(0.0),
            json!(1e-300),
            json!(3),
            json!(3.0),
            json!(9007199254740992.0),
            json!(9007199254740993u64),
            json!(18446744073709551615u64),
            json!(1e300),
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(num(a.clone()).cmp(&num(b.clone())), i.cmp(&j), "{a} {b}");
            }
        }
        assert_eq!(Num::of(&json!("3")), None);
        let by = |v: Value| ByValue(num(v));
        assert_eq!(by(json!(3)), by(json!(3.0)));
        assert_eq!(by(json!(0)), by(json!(-0.0)));
        assert!(by(json!(9007199254740993u64)) > by(json!(9007199254740992.0)));
        assert!(by(json!(2)) < by(json!(2.5)));
        assert_eq!(num(json!(3)).to_json(), json!(3));
        assert_eq!(num(json!(2.5)).to_json(), json!(2.5));
    }

    #[test]
    fn sums_of_integers_are_integers_and_a_float_makes_them_floats() {
        let mut s = Sum::default();
        s.add(num(json!(2)));
        s.add(num(json!(u64::MAX)));
        assert_eq!(s.value().to_json(), json!(18446744073709551617.0));
        s.remove(num(json!(u64::MAX)));
        assert_eq!(s.value().to_json(), json!(2));
        s.add(num(json!(0.5)));
        assert_eq!(s.value().to_json(), json!(2.5));
        s.remove(num(json!(0.5)));
        assert_eq!(s.value().to_json(), json!(2));
    }

    #[test]
    fn a_float_sum_is_the_nearest_float_to_the_exact_sum() {
        let of = |terms: &[f64]| {
            let mut s = Sum::default();
            terms.iter().for_each(|t| s.add(Num::Float(*t)));
            s.value().to_json()
        };
        assert_eq!(of(&[0.1, 0.2]), json!(0.30000000000000004));
        assert_eq!(of(&[1e100, 1.0, -1e100]), json!(1.0));
        assert_eq!(of(&[1e308, 1e308, -1e308]), json!(1e308));
        assert_eq!(of(&[1e308, 1e308]), json!(f64::MAX));
        assert_eq!(of(&[-1e308, -1e308]), json!(-f64::MAX));
        assert_eq!(of(&[-0.0]), json!(0.0));
        let mut back = Sum::default();
        for t in [0.1, 0.7, 1e300, 3.3] {
            back.add(Num::Float(t));
        }
        for t in [1e300, 0.7, 3.3] {
            back.remove(Num::Float(t));
        }
        assert_eq!(back.value().to_json(), json!(0.1));
    }

    /// Terms whose exact sum an i128 of 1024ths holds.
    fn small_term() -> impl Strategy<Value = f64> {
        (-(1i64 << 40)..(1i64 << 40)).prop_map(|n| n as f64 / 1024.0)
    }

    fn any_term() -> impl Strategy<Value = Num> {
        prop_oneof![
            any::<i64>().prop_map(|i| Num::Int(i.into())),
            small_term().prop_map(Num::Float),
            prop::sample::select(vec![
                0.1, 0.2, -0.3, 1e-300, 5e-324, 1e300, 1e308, -1e308, 2.5
            ])
            .prop_map(Num::Float),
        ]
    }

    proptest! {
        #[test]
        fn a_sum_is_correctly_rounded(terms in prop::collection::vec(small_term(), 0..40)) {
            let exact: i128 = terms.iter().map(|t| (t * 1024.0) as i128).sum();
            let mut s = Sum::default();
            terms.iter().for_each(|t| s.add(Num::Float(*t)));
            let want = if terms.is_empty() { Num::Int(0) } else { Num::Float(exact as f64 / 1024.0) };
            prop_assert_eq!(s.value().to_json(), want.to_json());
        }

        #[test]
        fn a_sum_kept_term_by_term_equals_one_made_from_scratch(
            ops in prop::collection::vec((any_term(), any::<bool>(), any::<prop::sample::Index>()), 1..80)
        ) {
            let mut kept = Sum::default();
            let mut terms: Vec<Num> = Vec::new();
            for (term, add, which) in ops {
                if add || terms.is_empty() {
                    kept.add(term);
                    terms.push(term);
                } else {
                    let gone = terms.remove(which.index(terms.len()));
                    kept.remove(gone);
                }
                let mut scratch = Sum::default();
                let mut sorted = terms.clone();
                sorted.sort();
                sorted.iter().rev().for_each(|t| scratch.add(*t));
                prop_assert_eq!(kept.value().to_json(), scratch.value().to_json());
            }
        }

        #[test]
        fn the_order_is_the_order_of_the_exact_values(a in any::<i64>(), b in any::<f64>()) {
            prop_assume!(b.is_finite());
            let exact = |x: f64| x.partial_cmp(&(a as f64));
            // Where the float compares unequal to `a` rounded, that decides.
            if let Some(o) = exact(b).filter(|o| *o != Ordering::Equal) {
                prop_assert_eq!(Num::Int(a.into()).cmp(&Num::Float(b)), o.reverse());
            }
            prop_assert_eq!(Num::Int(a.into()).cmp(&Num::Float(b)), Num::Float(b).cmp(&Num::Int(a.into())).reverse());
        }
    }
}
