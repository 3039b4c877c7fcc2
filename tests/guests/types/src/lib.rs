//! Echoes every WIT value type back, so the host tests can check the JSON mapping
//! both ways against a real component; also exports resources, which must be
//! listed as not invocable.

wit_bindgen::generate!({ path: "wit", world: "types" });

use exports::warden_tests::types::echo::{Color, Everything, Permissions, Point, Shape};
use exports::warden_tests::types::handles::{CounterBorrow, GuestCounter};
use std::cell::Cell;

struct Types;

impl Guest for Types {
    fn add(a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
}

impl exports::warden_tests::types::echo::Guest for Types {
    fn echo_bool(value: bool) -> bool {
        value
    }
    fn echo_s8(value: i8) -> i8 {
        value
    }
    fn echo_u8(value: u8) -> u8 {
        value
    }
    fn echo_s16(value: i16) -> i16 {
        value
    }
    fn echo_u16(value: u16) -> u16 {
        value
    }
    fn echo_s32(value: i32) -> i32 {
        value
    }
    fn echo_u32(value: u32) -> u32 {
        value
    }
    fn echo_s64(value: i64) -> i64 {
        value
    }
    fn echo_u64(value: u64) -> u64 {
        value
    }
    fn echo_f32(value: f32) -> f32 {
        value
    }
    fn echo_f64(value: f64) -> f64 {
        value
    }
    fn echo_char(value: char) -> char {
        value
    }
    fn echo_string(value: String) -> String {
        value
    }
    fn echo_list(value: Vec<i32>) -> Vec<i32> {
        value
    }
    fn echo_record(value: Point) -> Point {
        value
    }
    fn echo_tuple(value: (u8, String, bool)) -> (u8, String, bool) {
        value
    }
    fn echo_variant(value: Shape) -> Shape {
        value
    }
    fn echo_enum(value: Color) -> Color {
        value
    }
    fn echo_option(value: Option<u32>) -> Option<u32> {
        value
    }
    fn echo_nested_option(value: Option<Option<String>>) -> Option<Option<String>> {
        value
    }
    fn echo_result(value: Result<String, u32>) -> Result<String, u32> {
        value
    }
    fn echo_flags(value: Permissions) -> Permissions {
        value
    }
    fn echo_everything(value: Everything) -> Everything {
        value
    }
    fn describe(name: String, age: u8, tags: Vec<String>) -> String {
        format!("{name} ({age}) [{}]", tags.join(", "))
    }
    fn nothing() {}
    fn fail(reason: String) -> Result<u32, String> {
        Err(reason)
    }
}

struct Counter(Cell<u32>);

impl GuestCounter for Counter {
    fn new(start: u32) -> Self {
        Counter(Cell::new(start))
    }
    fn bump(&self) -> u32 {
        self.0.set(self.0.get() + 1);
        self.0.get()
    }
}

impl exports::warden_tests::types::handles::Guest for Types {
    type Counter = Counter;

    fn make_counter(start: u32) -> exports::warden_tests::types::handles::Counter {
        exports::warden_tests::types::handles::Counter::new(Counter(Cell::new(start)))
    }

    fn read_counter(c: CounterBorrow<'_>) -> u32 {
        c.get::<Counter>().0.get()
    }
}

export!(Types);
