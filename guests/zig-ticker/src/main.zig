//! The Zig twin of the Rust `ticker` guest, line for line: ticks every
//! 100 ms of game time, says once when 250 ms have passed, answers
//! `ticker/cancel` (stops the ticks) and `ticker/flood` (schedules tasks
//! until the host refuses one), sends `ping` with `from ticker` on start,
//! and carries its tick count across hot reloads (8 little-endian bytes,
//! the Rust twin's format).
//!
//! Without an SDK, it keeps the ids of its two tasks and dispatches the
//! batch itself: tasks by id, messages by topic.

const std = @import("std");
const hotwasm = @import("hotwasm.zig");
const wit = hotwasm.wit;
const info = hotwasm.info;
const fail = hotwasm.fail;
const string = hotwasm.string;

const millisecond: u64 = 1_000_000;

var ticks: u64 = 0;
/// The repeating task, until `ticker/cancel`.
var ticking: ?u64 = null;
/// The one-shot task, and when it was scheduled.
var once: u64 = 0;
var started: u64 = 0;

/// A scheduling error as the Rust SDK's `Debug` prints it; frees it.
fn describe(error_: *wit.hotwasm_script_scheduler_error_t, buffer: []u8) []const u8 {
    defer wit.hotwasm_script_scheduler_error_free(error_);
    const text = switch (error_.tag) {
        wit.HOTWASM_SCRIPT_SCHEDULER_ERROR_ZERO_INTERVAL => std.fmt.bufPrint(buffer, "Scheduler(Error::ZeroInterval)", .{}),
        wit.HOTWASM_SCRIPT_SCHEDULER_ERROR_TOO_MANY_TASKS => std.fmt.bufPrint(buffer, "Scheduler(Error::TooManyTasks({d}))", .{error_.val.too_many_tasks}),
        wit.HOTWASM_SCRIPT_SCHEDULER_ERROR_UNKNOWN_TASK => std.fmt.bufPrint(buffer, "Scheduler(Error::UnknownTask({d}))", .{error_.val.unknown_task}),
        else => std.fmt.bufPrint(buffer, "Scheduler(Error::Denied(\"{s}\"))", .{error_.val.denied.ptr[0..error_.val.denied.len]}),
    };
    return text catch "Scheduler(…)";
}

export fn exports_script_init(err: *wit.script_string_t) bool {
    var buffer: [256]u8 = undefined;
    var refused: wit.hotwasm_script_scheduler_error_t = undefined;
    started = wit.hotwasm_script_scheduler_now();
    var id: u64 = 0;
    if (!wit.hotwasm_script_scheduler_every(100 * millisecond, null, &id, &refused))
        return fail(err, describe(&refused, &buffer));
    ticking = id;
    if (!wit.hotwasm_script_scheduler_after(250 * millisecond, &once, &refused))
        return fail(err, describe(&refused, &buffer));
    var not_sent: wit.hotwasm_script_messaging_error_t = undefined;
    for ([_][]const u8{ "ticker/cancel", "ticker/flood" }) |topic| {
        var name = string(topic);
        if (!wit.hotwasm_script_messaging_subscribe(&name, &not_sent)) {
            wit.hotwasm_script_messaging_error_free(&not_sent);
            return fail(err, "cannot subscribe");
        }
    }
    var topic = string("ping");
    const from = "from ticker";
    var payload = wit.script_list_u8_t{ .ptr = @constCast(from.ptr), .len = from.len };
    if (!wit.hotwasm_script_messaging_send(&topic, &payload, &not_sent)) {
        wit.hotwasm_script_messaging_error_free(&not_sent);
        return fail(err, "cannot send ping");
    }
    return true;
}

export fn exports_script_save_state(state: *wit.script_list_u8_t) bool {
    return hotwasm.saveU64(state, ticks);
}

export fn exports_script_restore_state(state: *wit.script_list_u8_t, err: *wit.script_string_t) bool {
    return hotwasm.restoreU64(state, err, &ticks);
}

fn cancel() void {
    const id = ticking orelse return;
    ticking = null;
    var refused: wit.hotwasm_script_scheduler_error_t = undefined;
    if (!wit.hotwasm_script_scheduler_cancel(id, &refused)) {
        var buffer: [256]u8 = undefined;
        info("cannot cancel: {s}", .{describe(&refused, &buffer)});
        return;
    }
    info("cancelled after {d} ticks", .{ticks});
}

fn flood() void {
    var scheduled: u64 = 0;
    var refused: wit.hotwasm_script_scheduler_error_t = undefined;
    var id: u64 = 0;
    while (wit.hotwasm_script_scheduler_after(3600 * 1000 * millisecond, &id, &refused)) scheduled += 1;
    var buffer: [256]u8 = undefined;
    info("scheduled {d} more tasks, then: {s}", .{ scheduled, describe(&refused, &buffer) });
}

export fn exports_script_handle_batch(batch: *wit.script_batch_t, changes: *wit.script_list_tuple2_u32_list_u8_t) void {
    defer wit.script_batch_free(batch);
    changes.* = .{ .ptr = null, .len = 0 };
    for (batch.tasks.ptr[0..batch.tasks.len]) |task| {
        if (ticking != null and task.id == ticking.?) {
            ticks += 1;
            info("tick {d} gen={d} missed={d}", .{ ticks, wit.hotwasm_script_instance_generation(), task.missed });
        } else if (task.id == once) {
            info("once after {d}ms", .{(wit.hotwasm_script_scheduler_now() - started) / millisecond});
        }
    }
    const bytes = batch.message_bytes.ptr[0..batch.message_bytes.len];
    for (batch.messages.ptr[0..batch.messages.len]) |message| {
        const topic = bytes[message.topic_start..][0..message.topic_len];
        if (std.mem.eql(u8, topic, "ticker/cancel")) cancel();
        if (std.mem.eql(u8, topic, "ticker/flood")) flood();
    }
}

export fn exports_script_handle_frame(now: wit.script_instant_t, frame: *wit.script_frame_t, changes: *wit.script_list_tuple2_u32_list_u8_t) void {
    _ = now;
    wit.script_frame_free(frame);
    changes.* = .{ .ptr = null, .len = 0 };
}

export fn exports_script_handle_requests(now: wit.script_instant_t, requests: *wit.script_list_request_t, request_bytes: *wit.script_list_u8_t, answers: *wit.script_list_result_list_u8_request_error_t) void {
    _ = now;
    hotwasm.answerNone(requests, request_bytes, answers);
}
