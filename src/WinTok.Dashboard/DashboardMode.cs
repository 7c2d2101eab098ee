namespace WinTok.Dashboard;

/// <summary>
/// What this dashboard can do to jobs besides reading them. A local job's SQLite database has no workers behind it,
/// so a retry from here would reopen partitions that nothing runs; its retry is <c>wintok jobs retry ID --db PATH</c>,
/// which runs them in that process. Over PostgreSQL a retry publishes to the workers' queue, when one is configured.
/// </summary>
/// <param name="LocalDatabase">The SQLite file of a local job, or null over PostgreSQL.</param>
/// <param name="CanPublish">A job queue (RabbitMQ) is configured, so retries reach the workers.</param>
public sealed record DashboardMode(string? LocalDatabase, bool CanPublish);
