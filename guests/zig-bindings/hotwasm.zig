//! What every Zig guest needs besides the bindings: log lines, a WIT
//! `result`'s error, and a count kept across hot reloads in the format the
//! Rust SDK's `save_u64` uses (8 little-endian bytes), so a Zig guest and
//! its Rust twin can replace each other. Copied beside each guest's
//! `main.zig` by `scripts/build-guests.sh`, with `script_h.zig`.

const std = @import("std");
pub const wit = @import("script_h.zig");

/// Logs a line at INFO, under the module's name; a line too long for the
/// buffer is logged as `(line too long)`.
pub fn info(comptime format: []const u8, args: anytype) void {
    var buffer: [256]u8 = undefined;
    const line = std.fmt.bufPrint(&buffer, format, args) catch "(line too long)";
    var message = string(line);
    wit.hotwasm_script_log_log(wit.HOTWASM_SCRIPT_LOG_LEVEL_INFO, &message);
}

/// A WIT string borrowing `text`, for an import's argument.
pub fn string(text: []const u8) wit.script_string_t {
    return .{ .ptr = @constCast(text.ptr), .len = text.len };
}

/// Hands the host `text` as the error of a WIT `result` (a copy the
/// bindings free after the call): returns `false`.
pub fn fail(err: *wit.script_string_t, text: []const u8) bool {
    wit.script_string_dup_n(err, text.ptr, text.len);
    return false;
}

/// `save-state` of a count: `false` (nothing saved) when out of memory.
pub fn saveU64(state: *wit.script_list_u8_t, value: u64) bool {
    // Freed by the bindings after the host has copied it.
    const bytes: [*]u8 = @ptrCast(std.c.malloc(8) orelse return false);
    std.mem.writeInt(u64, bytes[0..8], value, .little);
    state.* = .{ .ptr = bytes, .len = 8 };
    return true;
}

/// A Zig error union as a WIT `result<_, string>`: `true` for success;
/// for an error, its name (`error.StateNotEightBytes` gives
/// `StateNotEightBytes`) as the result's error, and `false`.
pub fn result(err: *wit.script_string_t, outcome: anyerror!void) bool {
    outcome catch |e| return fail(err, @errorName(e));
    return true;
}

/// `restore-state` of a count into `value`, refusing state of another
/// length with `StateNotEightBytes`; frees `state`, which the guest owns.
pub fn restoreU64(state: *wit.script_list_u8_t, err: *wit.script_string_t, value: *u64) bool {
    defer wit.script_list_u8_free(state);
    return result(err, decodeU64(state.ptr[0..state.len], value));
}

fn decodeU64(bytes: []const u8, value: *u64) error{StateNotEightBytes}!void {
    if (bytes.len != 8) return error.StateNotEightBytes;
    value.* = std.mem.readInt(u64, bytes[0..8], .little);
}

/// `handle-requests` of a guest that answers no requests: frees them and
/// answers each `no-handler` (no answers at all when out of memory, which
/// the host reports as the guest's error).
pub fn answerNone(
    requests: *wit.script_list_request_t,
    request_bytes: *wit.script_list_u8_t,
    answers: *wit.script_list_result_list_u8_request_error_t,
) void {
    const count = requests.len;
    wit.script_list_request_free(requests);
    wit.script_list_u8_free(request_bytes);
    answers.* = .{ .ptr = null, .len = 0 };
    if (count == 0) return;
    const Answer = wit.script_result_list_u8_request_error_t;
    // Freed by the bindings after the host has copied the answers.
    const memory = std.c.malloc(count * @sizeOf(Answer)) orelse return;
    const list: [*]Answer = @ptrCast(@alignCast(memory));
    for (list[0..count]) |*answer| {
        answer.* = std.mem.zeroes(Answer);
        answer.is_err = true;
        answer.val.err.tag = wit.HOTWASM_SCRIPT_TYPES_REQUEST_ERROR_NO_HANDLER;
    }
    answers.* = .{ .ptr = list, .len = count };
}
