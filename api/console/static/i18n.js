// Chinese and English. The browser's language chooses; the switch overrides and is kept in localStorage.
// t("key", {n: 3}) fills {n}. A key missing in one language falls back to English, then to the key itself.
const EN = {
  skip_to_content: "Skip to content", loading: "Loading…", language: "Language", theme: "Theme",
  theme_auto: "Auto", theme_light: "Light", theme_dark: "Dark", menu: "Menu", main_menu: "Main menu", close: "Close",
  log_in: "Log in", log_out: "Log out", login_intro: "Sign in with the gateway's admin password.", admin_password: "Admin password",
  open_public_playground: "Open the public playground",
  page_dashboard: "Dashboard", page_accounts: "Accounts", page_keys: "API keys", page_logs: "Request log", page_media: "Media",
  page_settings: "Settings", page_playground: "Playground",
  confirm: "Confirm", cancel: "Cancel", are_you_sure: "Are you sure?", copied: "Copied to the clipboard", copy: "Copy",
  nothing_here: "Nothing here yet", table: "Table", not_available_yet: "This gateway does not offer this yet.",
  save: "Save", saved: "Saved", create: "Create", edit: "Edit", delete: "Delete", deleted: "Deleted", done: "Done",
  enable: "Enable", disable: "Disable", enabled: "Enabled", disabled: "Disabled", yes: "yes", no: "no", none: "None", all: "All",
  total: "Total", search: "Search", actions: "Actions", load_more: "Load more", download: "Download", unknown: "unknown",
  never: "never", error: "Error", errors: "Errors", failed: "Failed", ok: "OK", no_changes: "Nothing changed",
  // dashboard
  range: "Range", last_24h: "Last 24 hours", last_30d: "Last 30 days", accounts: "Accounts", state: "State",
  in_flight: "In flight", requests_today: "Requests today", success_rate: "Success rate", pool_health: "Pool health",
  remaining_quota: "Remaining quota per mode", plaintext_warning: "{n} account(s) store their token in plaintext: set ENCRYPTION_KEY.",
  egress_problems: "Egress problems (Cloudflare / anti-bot)", user_agent: "Your browser's user agent",
  egress_help: "grok.com refused this gateway's traffic, not an account. From the same browser and IP, copy:",
  traffic: "Traffic", requests: "Requests", tokens: "Tokens", latency: "Latency", mean_ms: "mean ms",
  errors_by_kind: "Errors by kind", no_errors: "No errors", top_models: "Top models", top_keys: "Top keys", pool_history: "Accounts over time",
  // accounts
  status_active: "active", status_cooling: "cooling", status_invalid: "invalid", status_disabled: "disabled",
  tier_basic: "basic", tier_super: "super", tier_heavy: "heavy", tier_unknown: "unknown",
  import_tokens: "Import tokens", paste_tokens: "Paste tokens", import_placeholder: "one sso token per line (sso=… is fine)",
  import_hint: "One per line, or a JSON list. Tokens are stored encrypted when ENCRYPTION_KEY is set.",
  token_file: "Or a file", tags_comma: "Tags (comma separated)", import: "Import",
  import_result: "{added} added, {skipped} skipped", stored_plaintext: "Stored in plaintext: ENCRYPTION_KEY is not set.",
  search_accounts: "token, id, note or tag", tier: "Tier", tag: "Tag", tags: "Tags", quota_left: "Quota left",
  quota_some: "Some left", quota_none: "Exhausted", account_list: "Account list", bulk_actions: "Bulk actions",
  selected_n: "{n} selected", refresh_quota: "Refresh quota", refresh_stale: "Refresh stale quotas", export: "Export",
  delete_accounts_confirm: "Delete {n} account(s)? Their tokens are removed from the store.",
  done_enable: "{n} enabled", done_disable: "{n} disabled", done_delete: "{n} deleted",
  refreshing_quota: "Refreshing quota", starting: "starting…", refresh_done: "Refreshed {done} of {total} ({errors} errors)",
  select_all: "Select all shown", select_account: "Select {name}", token: "Token", quota: "Quota", last_used: "Last used",
  test: "Test", test_ok: "Token works (tier {tier})", test_failed: "Test failed", no_accounts: "No accounts. Import some above.",
  matching: "matching", tag_n_accounts: "Tag {n} account(s)", tags_add: "Add to existing tags", tags_replace: "Replace tags",
  tags_saved: "Tags saved", mode: "Mode", account: "Account", encrypted: "Encrypted", lost: "lost", created: "Created",
  quota_refreshed: "Quota refreshed", last_error: "Last error", remaining: "Remaining", resets_at: "Resets at",
  note: "Note", concurrency: "Concurrency", concurrency_hint: "0 = the global default", until: "until",
  export_confirm: "The export contains the unmasked session tokens. Keep the file safe.",
  // keys
  create_key: "Create key", key: "Key", name: "Name", models: "Models", limits: "Limits", today: "Today", expires: "Expires",
  rotate: "Rotate", rotate_confirm: "Rotate {name}? The old secret stops working now.",
  delete_key_confirm: "Delete the key {name}? Clients using it are refused from now on.", no_keys: "No API keys yet.",
  allowed_models: "Allowed models", allowed_models_hint: "Comma separated; * globs; empty = all models", scopes: "Scopes",
  scope_chat: "Chat", scope_images: "Images", scope_video: "Video", rpm: "Requests / minute", rpd: "Requests / day",
  kind: "Kind", limit: "Limit", period: "Period", quota_requests: "requests", quota_tokens: "tokens",
  period_day: "day", period_week: "week", period_month: "month", period_total: "total",
  expires_hint: "Empty = never", per_min: "/min", per_day: "/day", concurrent: "concurrent", unlimited: "unlimited",
  quota_used: "Quota used", usage_30d: "Requests per day (30 days)", no_usage: "No usage yet", day: "Day",
  secret_once_title: "Your new API key", secret_key: "Secret key",
  secret_once: "Copy it now: this is the only time the gateway shows it. Only a hash is stored.",
  // logs
  live_tail: "Live tail", tail_on: "Following new requests", filter_status: "Status", filter_model: "Model",
  filter_key: "Key", filter_account: "Account", filter_route: "Route", time: "Time", no_requests: "No requests logged.",
  request: "Request", prompt: "Prompt", answer: "Answer",
  // media
  images: "Images", videos: "Videos", cleanup: "Clean up expired", cleanup_confirm: "Delete expired media now?",
  cleanup_done: "{n} deleted, {size} freed", media_usage: "{n} items, {size}", no_media: "No media yet.",
  delete_media_confirm: "Delete this file?", open_image: "Open {name}",
  // settings
  source_default: "default", source_env: "environment", source_store: "store (set here)", env_value: "environment value",
  reset_to_env: "Back to environment", settings_intro: "Run-time settings (version {version}). A value set here overrides the environment.",
  // playground
  pg_chat: "Chat", pg_images: "Images", pg_video: "Video", model: "Model", history: "History", new_chat: "New chat",
  delete_chat: "Delete chat", system_prompt: "System prompt", system_prompt_placeholder: "optional",
  conversation: "Conversation", message: "Message", chat_placeholder: "Ask anything…", send_hint: "Ctrl+Enter sends",
  attach_images: "Attach images", attached_image: "attached image", attached_image_n: "attached image {n}", send: "Send",
  stop: "Stop", stopped: "Stopped", streaming: "Streaming…", reasoning: "Reasoning", role_user: "You", role_assistant: "Grok",
  chat_done: "{secs} s · first token {ttft} s · {tokens} tokens",
  public_mode_intro: "Public playground: requests go through the gateway's public key and its rate limit.",
  public_key: "Public key", public_key_hint: "Leave empty if the operator did not set one.",
  generate: "Generate", image_prompt_placeholder: "a lighthouse at dawn, watercolor", size: "Size", count: "Count",
  source_images: "Source images", results: "Results", working: "Working…", image_n: "Image {n}",
  partial_image: "preview…", images_progress: "{done} of {total} images", no_image: "no image (moderated or failed)",
  took_secs: "Took {secs} s", keep_in_gallery: "Keep in the media gallery (no previews while it works)",
  video_prompt_placeholder: "a paper boat on a river", seconds: "Seconds", start_image: "Start image (optional)",
  start_image_hint: "Image to video: the first frame", create_video: "Create video", video_progress: "Video progress",
  submitting: "submitting…", elapsed_secs: "generating… {secs} s", downloading: "downloading…",
};

const ZH = {
  skip_to_content: "跳到正文", loading: "加载中…", language: "语言", theme: "主题",
  theme_auto: "跟随系统", theme_light: "浅色", theme_dark: "深色", menu: "菜单", main_menu: "主菜单", close: "关闭",
  log_in: "登录", log_out: "退出登录", login_intro: "使用网关的管理员密码登录。", admin_password: "管理员密码",
  open_public_playground: "打开公开试用页",
  page_dashboard: "仪表盘", page_accounts: "账号", page_keys: "API 密钥", page_logs: "请求日志", page_media: "媒体",
  page_settings: "设置", page_playground: "试用",
  confirm: "确认", cancel: "取消", are_you_sure: "确定吗？", copied: "已复制到剪贴板", copy: "复制",
  nothing_here: "暂无内容", table: "表格", not_available_yet: "此网关暂未提供该功能。",
  save: "保存", saved: "已保存", create: "创建", edit: "编辑", delete: "删除", deleted: "已删除", done: "完成",
  enable: "启用", disable: "停用", enabled: "已启用", disabled: "已停用", yes: "是", no: "否", none: "无", all: "全部",
  total: "总数", search: "搜索", actions: "操作", load_more: "加载更多", download: "下载", unknown: "未知",
  never: "永不", error: "错误", errors: "错误", failed: "失败", ok: "成功", no_changes: "没有修改",
  range: "时间范围", last_24h: "最近 24 小时", last_30d: "最近 30 天", accounts: "账号", state: "状态",
  in_flight: "进行中", requests_today: "今日请求", success_rate: "成功率", pool_health: "账号池状态",
  remaining_quota: "各模式剩余额度", plaintext_warning: "{n} 个账号的令牌以明文保存：请设置 ENCRYPTION_KEY。",
  egress_problems: "出口问题（Cloudflare / 反机器人）", user_agent: "浏览器的 User-Agent",
  egress_help: "grok.com 拒绝的是本网关的流量，而不是某个账号。请在同一浏览器、同一 IP 下复制：",
  traffic: "流量", requests: "请求数", tokens: "Token 数", latency: "延迟", mean_ms: "平均毫秒",
  errors_by_kind: "错误类型", no_errors: "没有错误", top_models: "热门模型", top_keys: "热门密钥", pool_history: "账号状态变化",
  status_active: "可用", status_cooling: "冷却中", status_invalid: "失效", status_disabled: "已停用",
  tier_basic: "basic", tier_super: "super", tier_heavy: "heavy", tier_unknown: "未知",
  import_tokens: "导入令牌", paste_tokens: "粘贴令牌", import_placeholder: "每行一个 sso 令牌（可带 sso= 前缀）",
  import_hint: "每行一个，或 JSON 列表。设置 ENCRYPTION_KEY 后令牌加密保存。",
  token_file: "或选择文件", tags_comma: "标签（逗号分隔）", import: "导入",
  import_result: "新增 {added} 个，跳过 {skipped} 个", stored_plaintext: "以明文保存：未设置 ENCRYPTION_KEY。",
  search_accounts: "令牌、ID、备注或标签", tier: "等级", tag: "标签", tags: "标签", quota_left: "剩余额度",
  quota_some: "尚有剩余", quota_none: "已用完", account_list: "账号列表", bulk_actions: "批量操作",
  selected_n: "已选 {n} 个", refresh_quota: "刷新额度", refresh_stale: "刷新过期额度", export: "导出",
  delete_accounts_confirm: "删除 {n} 个账号？它们的令牌将从存储中移除。",
  done_enable: "已启用 {n} 个", done_disable: "已停用 {n} 个", done_delete: "已删除 {n} 个",
  refreshing_quota: "正在刷新额度", starting: "开始…", refresh_done: "已刷新 {done}/{total}（{errors} 个错误）",
  select_all: "全选当前列表", select_account: "选择 {name}", token: "令牌", quota: "额度", last_used: "最近使用",
  test: "测试", test_ok: "令牌可用（等级 {tier}）", test_failed: "测试失败", no_accounts: "暂无账号，请先在上方导入。",
  matching: "符合条件", tag_n_accounts: "为 {n} 个账号设置标签", tags_add: "追加到现有标签", tags_replace: "替换标签",
  tags_saved: "标签已保存", mode: "模式", account: "账号", encrypted: "已加密", lost: "丢失", created: "创建时间",
  quota_refreshed: "额度刷新时间", last_error: "最近错误", remaining: "剩余", resets_at: "重置时间",
  note: "备注", concurrency: "并发数", concurrency_hint: "0 = 使用全局默认值", until: "直到",
  export_confirm: "导出文件包含未打码的会话令牌，请妥善保管。",
  create_key: "创建密钥", key: "密钥", name: "名称", models: "模型", limits: "限制", today: "今日", expires: "过期时间",
  rotate: "轮换", rotate_confirm: "轮换 {name}？旧密钥将立即失效。",
  delete_key_confirm: "删除密钥 {name}？使用它的客户端将被拒绝。", no_keys: "还没有 API 密钥。",
  allowed_models: "允许的模型", allowed_models_hint: "逗号分隔，支持 * 通配；留空 = 全部模型", scopes: "权限范围",
  scope_chat: "对话", scope_images: "图片", scope_video: "视频", rpm: "每分钟请求数", rpd: "每天请求数",
  kind: "类型", limit: "上限", period: "周期", quota_requests: "请求", quota_tokens: "token",
  period_day: "天", period_week: "周", period_month: "月", period_total: "总计",
  expires_hint: "留空 = 永不过期", per_min: "/分钟", per_day: "/天", concurrent: "并发", unlimited: "不限",
  quota_used: "已用额度", usage_30d: "每日请求数（30 天）", no_usage: "暂无用量", day: "日期",
  secret_once_title: "新的 API 密钥", secret_key: "密钥",
  secret_once: "请立即复制：网关只显示这一次，存储中只保留哈希值。",
  live_tail: "实时跟踪", tail_on: "正在跟踪新请求", filter_status: "状态码", filter_model: "模型",
  filter_key: "密钥", filter_account: "账号", filter_route: "路由", time: "时间", no_requests: "暂无请求记录。",
  request: "请求", prompt: "提示词", answer: "回答",
  images: "图片", videos: "视频", cleanup: "清理过期文件", cleanup_confirm: "现在删除过期的媒体文件？",
  cleanup_done: "删除 {n} 个，释放 {size}", media_usage: "{n} 个文件，{size}", no_media: "暂无媒体文件。",
  delete_media_confirm: "删除此文件？", open_image: "打开 {name}",
  source_default: "默认值", source_env: "环境变量", source_store: "存储（在此设置）", env_value: "环境变量值",
  reset_to_env: "恢复为环境变量", settings_intro: "运行时设置（版本 {version}）。在此设置的值优先于环境变量。",
  pg_chat: "对话", pg_images: "图片", pg_video: "视频", model: "模型", history: "历史", new_chat: "新对话",
  delete_chat: "删除对话", system_prompt: "系统提示词", system_prompt_placeholder: "可选",
  conversation: "对话内容", message: "消息", chat_placeholder: "输入你的问题…", send_hint: "Ctrl+Enter 发送",
  attach_images: "附加图片", attached_image: "附加的图片", attached_image_n: "附加的图片 {n}", send: "发送",
  stop: "停止", stopped: "已停止", streaming: "生成中…", reasoning: "思考过程", role_user: "你", role_assistant: "Grok",
  chat_done: "{secs} 秒 · 首字 {ttft} 秒 · {tokens} 个 token",
  public_mode_intro: "公开试用：请求使用网关的公开密钥，并受其速率限制。",
  public_key: "公开密钥", public_key_hint: "如果运营者没有设置，请留空。",
  generate: "生成", image_prompt_placeholder: "黎明时分的灯塔，水彩风格", size: "尺寸", count: "数量",
  source_images: "原图", results: "结果", working: "处理中…", image_n: "图片 {n}",
  partial_image: "预览…", images_progress: "已完成 {done}/{total} 张", no_image: "没有图片（被审核或失败）",
  took_secs: "耗时 {secs} 秒", keep_in_gallery: "保存到媒体库（生成时不显示预览）",
  video_prompt_placeholder: "河面上的一只纸船", seconds: "时长（秒）", start_image: "起始图片（可选）",
  start_image_hint: "图生视频：作为第一帧", create_video: "生成视频", video_progress: "视频进度",
  submitting: "提交中…", elapsed_secs: "生成中… {secs} 秒", downloading: "下载中…",
};

const DICTS = { en: EN, zh: ZH };
const KEY = "g2a.lang";

function detect() {
  try {
    const saved = localStorage.getItem(KEY);
    if (saved === "en" || saved === "zh") return saved;
  } catch { /* storage unavailable */ }
  const langs = navigator.languages?.length ? navigator.languages : [navigator.language || "en"];
  return langs.some((l) => /^zh\b/i.test(l)) && /^zh/i.test(langs[0]) ? "zh" : "en";
}

let current = detect();
export const lang = () => current;
export function setLang(value) {
  current = value === "zh" ? "zh" : "en";
  try { localStorage.setItem(KEY, current); } catch { /* storage unavailable */ }
}

export function t(key, vars) {
  let text = DICTS[current][key] ?? EN[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`{${k}}`, String(v));
  return text;
}

// For the browser tests: keys one language has and the other lacks.
export const missing = () => ({
  zh: Object.keys(EN).filter((k) => !(k in ZH)), en: Object.keys(ZH).filter((k) => !(k in EN)),
});
