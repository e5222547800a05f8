//! Kubernetes resource quantities as byte counts: apimachinery's `Quantity.Value()`
//! ([`quantity_value`]), `resource.NewQuantity(bytes, BinarySI)` ([`bytes_to_quantity`]) and
//! `Quantity.Cmp` ([`cmp_quantity`]).

use std::cmp::Ordering;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// apimachinery's `Quantity.Value()` of a quantity string: the value rounded up to an integer
/// (`1.5Gi`, `100M`, `1e3`, `100m` → 1). `None` when it does not parse.
pub fn quantity_value(quantity: &str) -> Option<i64> {
    let s = quantity.trim();
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = s.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
    let (base, exponent): (i128, i32) = match suffix {
        "" => (10, 0),
        "Ki" => (1024, 1),
        "Mi" => (1024, 2),
        "Gi" => (1024, 3),
        "Ti" => (1024, 4),
        "Pi" => (1024, 5),
        "Ei" => (1024, 6),
        "n" => (10, -9),
        "u" => (10, -6),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        other if other.starts_with(['e', 'E']) => (10, other[1..].parse().ok()?),
        _ => return None,
    };
    // value = mantissa * base^exponent / 10^fraction_digits, rounded up (away from zero).
    let mut numerator = mantissa;
    let mut denominator: i128 = 10i128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    if exponent >= 0 {
        numerator = numerator.checked_mul(base.checked_pow(exponent.unsigned_abs())?)?;
    } else {
        denominator = denominator.checked_mul(base.checked_pow(exponent.unsigned_abs())?)?;
    }
    let mut value = numerator / denominator;
    if numerator % denominator != 0 {
        value += 1;
    }
    let value = if negative { -value } else { value };
    Some(value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// A byte count as apimachinery writes `resource.NewQuantity(bytes, BinarySI)`: the largest
/// binary suffix that divides it exactly (`5Gi`, `5632Mi`, `100Ki`), plain digits otherwise;
/// below 1024 in decimal form (`100`, `1k`) (external-provisioner's `bytesToQuantity`).
pub fn bytes_to_quantity(bytes: i64) -> Quantity {
    if bytes > -1024 && bytes < 1024 {
        if bytes != 0 && bytes % 1000 == 0 {
            return Quantity(format!("{}k", bytes / 1000));
        }
        return Quantity(bytes.to_string());
    }
    let mut value = bytes;
    let mut suffix = "";
    for s in ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"] {
        if value % 1024 != 0 {
            break;
        }
        value /= 1024;
        suffix = s;
    }
    Quantity(format!("{value}{suffix}"))
}

/// `a.Cmp(b)` of two quantities; a missing or unparsable quantity is zero.
pub fn cmp_quantity(a: Option<&Quantity>, b: Option<&Quantity>) -> Ordering {
    let value = |q: Option<&Quantity>| q.and_then(|q| quantity_value(&q.0)).unwrap_or(0);
    value(a).cmp(&value(b))
}

#[cfg(test)]
mod tests;
