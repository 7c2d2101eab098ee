using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WinTok.Dashboard.Pages;
using WinTok.Dashboard.Security;
using WinTok.Jobs;
using WinTok.Results;

using Http = Microsoft.AspNetCore.Http.Results;

namespace WinTok.Dashboard;

/// <summary>
/// The dashboard's routes: each page at its path and the same data as JSON under <c>/api</c>; actions (POST) behind
/// <see cref="ActionGate"/>. Pages are Razor components, so every string they show is HTML-encoded.
/// </summary>
internal static class DashboardEndpoints
{
    private static readonly Dictionary<string, string> Notices = new(StringComparer.Ordinal)
    {
        ["cancelled"] = "Cancelled: running partitions stop at their next check; committed ones stay.",
        ["retried"] = "Retry published: the workers pick the reopened partitions up.",
        ["signed-in"] = "Signed in: cancel and retry are available.",
    };

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => Http.Redirect("/jobs"));
        app.MapGet("/healthz", () => Http.Text("ok"));
        app.MapGet("/assets/{name}", Asset);

        app.MapGet("/jobs", async (HttpContext http, DashboardReader reader, string? status, string? kind, int? limit, CancellationToken token) =>
            Responses.Page<JobsPage>(Responses.Shell(http, "Jobs", "jobs", live: true),
                await reader.JobsAsync(Blank(status), Blank(kind), Limit(limit), token)));
        app.MapGet("/api/jobs", async (DashboardReader reader, string? status, string? kind, int? limit, CancellationToken token) =>
            Http.Json((await reader.JobsAsync(Blank(status), Blank(kind), Limit(limit), token)).Jobs.Select(r => ApiJob.Of(r.Job, r.Rates))));

        app.MapGet("/jobs/{id}", async (HttpContext http, DashboardReader reader, string id, string? notice, CancellationToken token) =>
        {
            if (await reader.ResolveAsync(id, token) is not { } jobId) return Responses.NotFound(http, $"job {id}", api: false);
            if (jobId.ToString() != id) return Http.Redirect($"/jobs/{jobId}");
            var view = await reader.JobAsync(jobId, notice is null ? null : Notices.GetValueOrDefault(notice), token);
            if (view is null) return Responses.NotFound(http, $"job {id}", api: false);
            var live = view.Job.Status is JobStatus.Queued or JobStatus.Running;
            return Responses.Page<JobPage>(Responses.Shell(http, $"Job {jobId}", "jobs", live), view);
        });
        app.MapGet("/api/jobs/{id}", async (HttpContext http, DashboardReader reader, string id, CancellationToken token) =>
        {
            var view = await reader.ResolveAsync(id, token) is { } jobId ? await reader.JobAsync(jobId, null, token) : null;
            if (view is null) return Responses.NotFound(http, $"job {id}", api: true);
            using var spec = JsonDocument.Parse(view.Job.SpecJson);
            return Http.Json(new ApiJobDetails(ApiJob.Of(view.Progress, view.Rates), spec.RootElement.Clone(),
                view.Partitions.Select(ApiPartition.Of).ToList(), view.Failures.Select(ApiFailure.Of).ToList(), view.CanCancel, view.CanRetry,
                view.RetryRefusal));
        });
        app.MapGet("/api/jobs/{id}/failures", async (HttpContext http, DashboardReader reader, string id, CancellationToken token) =>
            await reader.ResolveAsync(id, token) is { } jobId
                ? Http.Json((await reader.FailuresAsync(jobId, token)).Select(ApiFailure.Of))
                : Responses.NotFound(http, $"job {id}", api: true));

        foreach (var prefix in new[] { "", "/api" })
        {
            app.MapPost(prefix + "/jobs/{id}/cancel", CancelAsync).AddEndpointFilter<ActionGate>().DisableAntiforgery();
            app.MapPost(prefix + "/jobs/{id}/retry", RetryAsync).AddEndpointFilter<ActionGate>().DisableAntiforgery();
        }

        app.MapGet("/workers", async (HttpContext http, DashboardReader reader, CancellationToken token) =>
            Responses.Page<WorkersPage>(Responses.Shell(http, "Workers", "workers", live: true), await reader.WorkersAsync(token)));
        app.MapGet("/api/workers", async (DashboardReader reader, CancellationToken token) =>
            Http.Json((await reader.WorkersAsync(token)).Select(ApiWorker.Of)));

        app.MapGet("/evaluations", async (HttpContext http, DashboardReader reader, string? schedule, string? checkpoint, string? dataset,
            string? protocol, string? x, CancellationToken token) =>
            Responses.Page<EvaluationsPage>(Responses.Shell(http, "Evaluations", "evaluations"),
                await reader.EvaluationsAsync(Query(schedule, checkpoint, dataset, protocol, x), token)));
        app.MapGet("/api/evaluations", async (DashboardReader reader, string? schedule, string? checkpoint, string? dataset,
            string? protocol, string? x, CancellationToken token) =>
        {
            var view = await reader.EvaluationsAsync(Query(schedule, checkpoint, dataset, protocol, x), token);
            return Http.Json(new { evaluations = view.Evaluations, trends = view.Plots, note = view.TrendNote, regressions = view.RecentRegressions });
        });
        app.MapGet("/evaluations/compare", async (HttpContext http, DashboardReader reader, Guid? a, Guid? b, CancellationToken token) =>
            a is { } left && b is { } right && await reader.CompareAsync(left, right, token) is { } view
                ? Responses.Page<ComparePage>(Responses.Shell(http, "Compare", "evaluations"), view)
                : Responses.Refuse(http, StatusCodes.Status404NotFound, "Nothing to compare", "Pick two evaluations (a and b) that exist.", api: false));
        app.MapGet("/api/evaluations/compare", async (HttpContext http, DashboardReader reader, Guid? a, Guid? b, CancellationToken token) =>
            a is { } left && b is { } right && await reader.CompareAsync(left, right, token) is { } view
                ? Http.Json(new { a = view.A, b = view.B, comparable = view.Comparable, metrics = view.Metrics })
                : Responses.NotFound(http, "such pair of evaluations", api: true));
        app.MapGet("/evaluations/{id:guid}", async (HttpContext http, DashboardReader reader, Guid id, CancellationToken token) =>
            await reader.EvaluationAsync(id, token) is { } view
                ? Responses.Page<EvaluationPage>(Responses.Shell(http, $"Evaluation {id}", "evaluations"), view)
                : Responses.NotFound(http, $"evaluation {id}", api: false));
        app.MapGet("/api/evaluations/{id:guid}", async (HttpContext http, DashboardReader reader, Guid id, CancellationToken token) =>
            await reader.EvaluationAsync(id, token) is { } view
                ? Http.Json(new { evaluation = view.Evaluation, regressions = view.Regressions, grid = view.HasGrid ? $"/evaluations/{id}/grid.png" : null })
                : Responses.NotFound(http, $"evaluation {id}", api: true));
        app.MapGet("/evaluations/{id:guid}/grid.png", async (DashboardReader reader, Guid id, CancellationToken token) =>
            await reader.OpenGridAsync(id, token) is { } grid ? Http.Stream(grid, "image/png") : Http.NotFound());

        app.MapGet("/login", (HttpContext http, string? returnUrl) =>
            new Microsoft.AspNetCore.Http.HttpResults.RazorComponentResult<LoginPage>(new Dictionary<string, object?>
            {
                ["Shell"] = Responses.Shell(http, "Sign in", ""),
                ["ReturnUrl"] = LocalPath(returnUrl),
            }));
        app.MapPost("/login", LoginAsync).DisableAntiforgery();
        app.MapPost("/logout", LogoutAsync).DisableAntiforgery();
    }

    private static async Task<IResult> CancelAsync(HttpContext http, DashboardReader reader, ResultsRepository results, string id,
        ILogger<DashboardReader> logger, CancellationToken token)
    {
        var api = IsApi(http);
        if (await reader.ResolveAsync(id, token) is not { } jobId || await results.GetJobAsync(jobId, token) is not { } job)
            return Responses.NotFound(http, $"job {id}", api);
        if (!await results.CancelJobAsync(jobId, token))
            return Responses.Refuse(http, StatusCodes.Status409Conflict, "Already ended", $"Job {jobId} has already ended ({job.Status}).", api);
        Log.CancelledJob(logger, jobId);
        return api ? Http.Json(new ApiActionResult(jobId, "cancelled")) : Http.Redirect($"/jobs/{jobId}?notice=cancelled", permanent: false);
    }

    private static async Task<IResult> RetryAsync(HttpContext http, DashboardReader reader, ResultsRepository results, string id,
        ILogger<DashboardReader> logger, CancellationToken token)
    {
        var api = IsApi(http);
        if (await reader.ResolveAsync(id, token) is not { } jobId || await results.GetJobAsync(jobId, token) is null)
            return Responses.NotFound(http, $"job {id}", api);
        if (reader.RetryRefusal(jobId) is { } refusal)
            return Responses.Refuse(http, StatusCodes.Status409Conflict, "Retry from the command line", $"Not retried: {refusal.Reason}", api, refusal.Command);
        var reopened = await http.RequestServices.GetRequiredService<JobControl>().RetryAsync(jobId, token);
        if (reopened.Count == 0)
            return Responses.Refuse(http, StatusCodes.Status409Conflict, "Nothing to retry", $"Job {jobId} is not failed or cancelled, or has nothing left to redo.", api);
        Log.RetriedJob(logger, jobId, reopened.Count);
        return api ? Http.Json(new ApiActionResult(jobId, "retried", reopened)) : Http.Redirect($"/jobs/{jobId}?notice=retried");
    }

    /// <summary>
    /// The login form: the token is checked (constant time) and answered with the session cookie, which stands for it
    /// without containing it. The form carries an antiforgery token like every other.
    /// </summary>
    private static async Task<IResult> LoginAsync(HttpContext http, ActionToken token, IAntiforgery antiforgery, ILogger<DashboardReader> logger)
    {
        if (!await antiforgery.IsRequestValidAsync(http))
            return Responses.Refuse(http, StatusCodes.Status400BadRequest, "Form expired", "Reload the sign-in page and try again.", api: false);
        var form = await http.Request.ReadFormAsync(http.RequestAborted);
        var returnUrl = LocalPath(form["returnUrl"]);
        if (!token.IsConfigured)
            return Responses.Refuse(http, StatusCodes.Status403Forbidden, "Actions are disabled",
                "This dashboard is read-only: start it with Dashboard__ActionToken set to allow cancel and retry.", api: false);
        if (!token.Matches(form["token"]))
        {
            Log.RefusedAction(logger, "/login", "wrong token");
            return new Microsoft.AspNetCore.Http.HttpResults.RazorComponentResult<LoginPage>(new Dictionary<string, object?>
            {
                ["Shell"] = Responses.Shell(http, "Sign in", ""),
                ["ReturnUrl"] = returnUrl,
                ["Error"] = "That is not the action token.",
            }) { StatusCode = StatusCodes.Status401Unauthorized };
        }
        http.Response.Cookies.Append(ActionToken.CookieName, token.SessionValue(), new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Secure = http.Request.IsHttps,
            Path = "/",
            IsEssential = true,
        });
        Log.SignedIn(logger, http.Connection.RemoteIpAddress?.ToString());
        return Http.Redirect(returnUrl);
    }

    private static async Task<IResult> LogoutAsync(HttpContext http, IAntiforgery antiforgery)
    {
        if (!await antiforgery.IsRequestValidAsync(http))
            return Responses.Refuse(http, StatusCodes.Status400BadRequest, "Form expired", "Reload the page and try again.", api: false);
        http.Response.Cookies.Delete(ActionToken.CookieName, new CookieOptions { Path = "/" });
        return Http.Redirect("/jobs");
    }

    /// <summary>The dashboard's own stylesheet and script, embedded in the assembly: nothing is fetched from elsewhere.</summary>
    private static IResult Asset(string name)
    {
        var type = Path.GetExtension(name) switch { ".css" => "text/css; charset=utf-8", ".js" => "text/javascript; charset=utf-8", _ => null };
        var stream = type is null ? null : typeof(DashboardEndpoints).Assembly.GetManifestResourceStream($"assets/{name}");
        return stream is null ? Http.NotFound() : Http.Stream(stream, type);
    }

    private static bool IsApi(HttpContext http) => http.Request.Path.StartsWithSegments("/api", StringComparison.Ordinal);

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    private static int Limit(int? limit) => Math.Clamp(limit ?? 50, 1, 1000);

    private static EvaluationQuery Query(string? schedule, string? checkpoint, string? dataset, string? protocol, string? x) =>
        new(Blank(schedule), Blank(checkpoint), Blank(dataset), Blank(protocol), x == "iteration");

    /// <summary>Only a path on this site (no scheme, no host, no //): an open redirect would send users elsewhere.</summary>
    private static string LocalPath(string? url) =>
        url is { Length: > 0 } && url[0] == '/' && !url.StartsWith("//", StringComparison.Ordinal) && !url.StartsWith("/\\", StringComparison.Ordinal)
            ? url : "/jobs";
}
