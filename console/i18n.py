"""The console's words in Mandarin (the default) and English."""

from __future__ import annotations

import datetime as dt
import zoneinfo

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

# key: (zh-CN, en)
TEXT: dict[str, tuple[str, str]] = {
    "title": ("12333 热线坐席台", "12333 hotline console"),
    "login": ("登录", "Sign in"),
    "logout": ("退出", "Sign out"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "bad_login": ("用户名或密码错误", "Wrong user name or password"),
    "address_blocked": (
        "此地址登录失败次数过多，请于 {until} 后再试",
        "Too many failed sign-ins from your address; try again after {until}",
    ),
    "busy_login": ("登录请求过多，请稍后再试", "Too many sign-ins at once; please try again shortly"),
    "expired": ("登录已过期，请重新登录", "Your session expired; please sign in again"),
    "switch_lang": ("English", "中文"),
    "agent_page": ("坐席工作台", "Agent desk"),
    "wallboard": ("监控大屏", "Wallboard"),
    "reports": ("服务报表", "Reports"),
    "period_from": ("开始日期", "From"),
    "period_to": ("结束日期(含)", "To (included)"),
    "show_report": ("查询", "Show"),
    "download": ("下载", "Download"),
    "my_state": ("我的状态", "My state"),
    "state.available": ("空闲", "Available"),
    "state.on_call": ("通话中", "On a call"),
    "state.paused": ("暂停", "Paused"),
    "state.logged_out": ("未签入", "Signed out of queues"),
    "btn.login": ("签入队列", "Join queues"),
    "btn.logout": ("签出队列", "Leave queues"),
    "btn.pause": ("暂停", "Pause"),
    "btn.unpause": ("恢复接听", "Resume"),
    "reason": ("暂停原因", "Pause reason"),
    "reason.break": ("小休", "Break"),
    "reason.meal": ("用餐", "Meal"),
    "reason.training": ("培训", "Training"),
    "reason.after_call": ("话后处理", "After-call work"),
    "reason.simulated": ("模拟数据", "Simulated"),
    "softphone": ("网页电话", "Softphone"),
    "phone.off": ("未启用", "Off"),
    "phone.connecting": ("连接中", "Connecting"),
    "phone.registered": ("已注册", "Registered"),
    "phone.unregistered": ("未注册", "Not registered"),
    "phone.ringing": ("来电振铃", "Ringing"),
    "phone.talking": ("通话中", "Talking"),
    "phone.held": ("保持中", "On hold"),
    "phone.incoming": ("来电：", "Incoming call from"),
    "btn.answer": ("接听", "Answer"),
    "btn.hangup": ("挂断", "Hang up"),
    "btn.hold": ("保持", "Hold"),
    "btn.unhold": ("取回", "Resume call"),
    "btn.mute": ("静音", "Mute"),
    "btn.unmute": ("取消静音", "Unmute"),
    "transfer_to": ("转接至", "Transfer to"),
    "btn.transfer": ("转接", "Transfer"),
    "dept.hotline-labour": ("劳动保障", "Labour"),
    "dept.hotline-12333": ("综合服务", "General"),
    "screen_pop": ("来电信息", "Caller"),
    "no_call": ("当前没有通话", "No call now"),
    "my_phone": ("我的话机", "My phone"),
    "deskphone.registered": ("已注册", "Registered"),
    "deskphone.unregistered": ("未注册：队列不会呼叫此话机", "Not registered: the queue will not ring it"),
    "deskphone.unknown": ("状态未知", "Unknown"),
    "phone_not_registered": ("话机未注册", "phone not registered"),
    "caller": ("来电号码", "Caller number"),
    "verified": ("身份已验证", "Identity verified"),
    "not_verified": ("身份未验证", "Identity not verified"),
    "name": ("姓名", "Name"),
    "id_number": ("身份证号", "ID number"),
    "phone": ("登记手机", "Registered phone"),
    "menu_path": ("语音导航轨迹", "IVR path"),
    "queries": ("已查询", "Queries made"),
    "pension": ("养老保险个人账户", "Pension account"),
    "pension_months": ("缴费月数", "Months paid"),
    "medical": ("医保个人账户", "Medical account"),
    "yuan": ("元", "yuan"),
    "wrapup": ("话后小结", "Wrap-up"),
    "wrapup_for": ("通话", "Call"),
    "code": ("处理结果", "Disposition"),
    "code.resolved": ("已解决", "Resolved"),
    "code.follow_up": ("需跟进", "Follow-up needed"),
    "code.complaint": ("投诉", "Complaint"),
    "code.transferred": ("已转办", "Referred"),
    "code.other": ("其他", "Other"),
    "note": ("备注", "Note"),
    "save": ("保存", "Save"),
    "saved": ("已保存", "Saved"),
    "no_last_call": ("还没有通话", "No call yet"),
    "callbacks": ("我的回电任务", "My callbacks"),
    "no_callbacks": ("没有待回电任务", "No callbacks waiting"),
    "requested_at": ("预约时间", "Requested"),
    "cb.reason.long_wait": ("等待过久", "Long wait"),
    "cb.reason.after_hours": ("非工作时间", "After hours"),
    "cb.reason.simulated": ("模拟数据", "Simulated"),
    "btn.take": ("认领并拨打", "Take and dial"),
    "btn.call": ("再次拨打", "Call again"),
    "call_out": ("外呼", "Call"),
    "cb.dial.dialing": ("正在拨打", "Dialing"),
    "cb.dial.answered": ("已接通", "Answered"),
    "cb.dial.busy": ("对方占线", "Busy"),
    "cb.dial.no_answer": ("无人接听", "No answer"),
    "cb.dial.lines_full": ("外呼线路已满，请稍后再拨", "Outbound lines full: try again shortly"),
    "cb.dial.failed": ("拨打失败", "Call failed"),
    "btn.done": ("已回电", "Reached"),
    "btn.failed": ("未接通", "Not reached"),
    "waiting": ("排队等待", "Callers waiting"),
    "longest_wait": ("最长等待", "Longest wait"),
    "seconds": ("秒", "s"),
    "agents_by_state": ("坐席状态", "Agents by state"),
    "today": ("今日指标", "Today"),
    "answered": ("人工接听", "Answered"),
    "abandoned": ("放弃", "Abandoned"),
    "automated": ("自助服务", "Self-service"),
    "service_level": ("20秒服务水平", "Service level (20 s)"),
    "avg_wait": ("平均等待", "Average wait"),
    "avg_talk": ("平均通话", "Average talk"),
    "satisfaction": ("满意率", "Satisfaction"),
    "open": ("工作时间", "Open"),
    "closed": ("非工作时间", "Closed"),
    "not_live": ("本进程未连接 AMI，排队数据不可用", "No AMI monitor in this process: queue figures unavailable"),
    "updated": ("更新于", "Updated"),
    "link_lost": ("连接中断，正在重连…", "Connection lost, reconnecting…"),
    "forbidden": ("无权访问", "Not allowed"),
}


def t(key: str, lang: str) -> str:
    zh, en = TEXT[key]
    return en if lang == "en" else zh


def table(lang: str) -> dict[str, str]:
    """Every string in one language, for the page's script."""
    return {key: t(key, lang) for key in TEXT}


def local_time(value: dt.datetime, zone: str) -> str:
    """A UTC time as the hotline's clock shows it (`queue.timezone`), to the second."""
    return value.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
