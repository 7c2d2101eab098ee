using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Timeout;
using WinTok.Results;
using WinTok.ServiceDefaults;

namespace WinTok.Jobs.Schedules;

/// <summary>What a schedule's webhook receives when an evaluation regressed (docs/schedules.md shows an example).</summary>
/// <param name="Event">Always <c>wintok.regression</c>.</param>
/// <param name="Regressions">Each regressed metric; its <c>id</c> is stable, so a receiver can drop a repeated delivery.</param>
internal sealed record RegressionPayload(
    string Event,
    string Schedule,
    Guid JobId,
    RegressionPayloadCheckpoint Checkpoint,
    string Dataset,
    string Protocol,
    DateTimeOffset EvaluatedAt,
    IReadOnlyList<RegressionPayloadMetric> Regressions);

internal sealed record RegressionPayloadCheckpoint(string Path, string Sha256, int? Epoch, long? Iteration);

/// <param name="Threshold">The allowed worsening, in the metric's units.</param>
/// <param name="Direction"><c>lower</c> or <c>higher</c>: which way the metric improves.</param>
internal sealed record RegressionPayloadMetric(long Id, string Metric, double Value, double Baseline, Guid? BaselineJobId, double Threshold, string Direction);

/// <summary>A webhook answered with a status that is not success.</summary>
internal sealed class WebhookRejectedException(string host, HttpStatusCode status)
    : Exception($"the webhook at {host} answered {(int)status} {status}")
{
    /// <summary>408, 429 and 5xx are worth retrying; any other refusal will not change.</summary>
    public bool IsTransient { get; } = status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)status >= 500;
}

/// <summary>
/// Posts regressions to a schedule's webhook as JSON, through the named <c>Webhook</c> retry pipeline (transport
/// failures, timeouts, 408, 429 and 5xx are retried with backoff), and marks them notified once the receiver answered
/// 2xx. The URL may carry a secret token: only its host is ever logged, and the HTTP client's own request logging is
/// removed. A delivery that still fails is logged and left for <see cref="PostPendingAsync"/>, never thrown.
/// </summary>
internal sealed class RegressionWebhook(
    IHttpClientFactory clients,
    SchedulesRepository schedules,
    EvaluationsRepository evaluations,
    [FromKeyedServices(RegressionWebhook.PipelineKey)] ResiliencePipeline pipeline,
    IOptions<SchedulerOptions> options,
    TimeProvider timeProvider,
    ILogger<RegressionWebhook> logger)
{
    /// <summary>The retry pipeline of webhook posts (<c>Resilience:Webhook</c>).</summary>
    public const string PipelineKey = "Webhook";

    /// <summary>The named HTTP client (its loggers removed: they would log the URL).</summary>
    public const string ClientName = "wintok-webhook";

    public const string EventName = "wintok.regression";

    /// <summary>Worth retrying: the transport failed, the request timed out, or the receiver answered 408, 429 or 5xx.</summary>
    public static bool IsTransient(Exception exception) => exception switch
    {
        WebhookRejectedException rejected => rejected.IsTransient,
        HttpRequestException => true,
        TaskCanceledException { InnerException: TimeoutException } => true,
        _ => false,
    };

    /// <summary>Posts <paramref name="regressions"/> of <paramref name="evaluation"/>; true once delivered and marked.</summary>
    public async Task<bool> PostAsync(ScheduleRecord schedule, EvaluationRecord evaluation, IReadOnlyList<RegressionRecord> regressions,
        CancellationToken cancellationToken)
    {
        if (schedule.WebhookUrl is not { } url || regressions.Count == 0) return false;
        var host = ScheduleDefinition.WebhookHost(url);
        var body = JsonSerializer.SerializeToUtf8Bytes(Payload(schedule.Name, evaluation, regressions), SchedulesJsonContext.Default.RegressionPayload);
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(ResiliencePipelineFactory.Operation, $"the regression webhook at {host}");
        try
        {
            await pipeline.ExecuteAsync(static async (ctx, state) =>
            {
                using var content = new ByteArrayContent(state.body);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                using var response = await state.client.PostAsync(state.url, content, ctx.CancellationToken);
                if (!response.IsSuccessStatusCode) throw new WebhookRejectedException(state.host, response.StatusCode);
            }, context, (client: clients.CreateClient(ClientName), url, body, host));
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && (IsTransient(e) || e is WebhookRejectedException or TimeoutRejectedException))
        {
            Log.WebhookFailed(logger, e, host, evaluation.JobId);
            return false;
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
        await schedules.MarkNotifiedAsync([.. regressions.Select(r => r.Id)], cancellationToken);
        Log.WebhookPosted(logger, regressions.Count, evaluation.JobId, host);
        return true;
    }

    /// <summary>
    /// The lease holder's retry of deliveries that failed: regressions not notified, recorded more than
    /// <see cref="SchedulerOptions.RepublishAfter"/> and less than <see cref="SchedulerOptions.WebhookRetryWindow"/> ago.
    /// </summary>
    public async Task PostPendingAsync(CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var pending = await schedules.ListRegressionsAsync(new RegressionFilter(UnnotifiedBefore: now - options.Value.RepublishAfter), cancellationToken);
        foreach (var job in pending.Where(r => r.CreatedAt > now - options.Value.WebhookRetryWindow && r.ScheduleName is not null).GroupBy(r => r.JobId))
        {
            var schedule = await schedules.GetAsync(job.First().ScheduleName!, cancellationToken);
            var evaluation = await evaluations.GetAsync(job.Key, cancellationToken);
            if (schedule?.WebhookUrl is null || evaluation is null) continue;
            await PostAsync(schedule, evaluation, [.. job], cancellationToken);
        }
    }

    internal static RegressionPayload Payload(string schedule, EvaluationRecord evaluation, IReadOnlyList<RegressionRecord> regressions) => new(
        EventName,
        schedule,
        evaluation.JobId,
        new RegressionPayloadCheckpoint(evaluation.CheckpointPath, evaluation.CheckpointSha256, evaluation.TrainingEpoch, evaluation.TrainingIteration),
        evaluation.DatasetName,
        evaluation.Protocol,
        evaluation.CreatedAt,
        [.. regressions.OrderBy(r => r.Metric, StringComparer.Ordinal)
            .Select(r => new RegressionPayloadMetric(r.Id, r.Metric, r.Value, r.BaselineValue, r.BaselineJobId, r.Threshold, r.Direction))]);
}
