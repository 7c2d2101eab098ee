using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using WinTok.Results;
using Xunit.Sdk;

namespace WinTok.IntegrationTests;

/// <summary>
/// Issue 14's telemetry, end to end: a real worker's Prometheus endpoint scraped while it runs a real job, its heartbeat
/// in the workers table, and the job's spans (job, partition, batch) received by an OTLP endpoint.
/// </summary>
[Collection(ServicesCollection.Name)]
public sealed partial class TelemetryTests(ServicesFixture services)
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Worker_ScrapedDuringARealJob_CountsImagesBatchesPartitionsAndFailures()
    {
        await using var job = await FaultJob.CreateAsync(services, "telemetry-scrape", 18, CorruptFile.All);
        var port = FreePort();
        await job.WithLogsAsync(async () =>
        {
            job.StartWorker("worker-a", new Dictionary<string, string>
            {
                ["Telemetry__PrometheusPort"] = port.ToString(CultureInfo.InvariantCulture),
                ["Worker__HeartbeatInterval"] = "00:00:01",
            });
            using var http = new HttpClient { BaseAddress = new Uri($"http://localhost:{port}") };
            var before = await ScrapeWhenUpAsync(http);
            await job.SubmitAsync();
            await job.WaitForCommittedPartitionsAsync(1);
            var during = Parse(await http.GetStringAsync("/metrics", Token));
            var done = await job.WaitForJobEndAsync();
            var after = Parse(await http.GetStringAsync("/metrics", Token));

            Assert.Equal(JobStatus.Succeeded, done.Status);
            Assert.Equal(0, Sum(before, "wintok_tokenize_images_total"));
            Assert.InRange(Sum(during, "wintok_tokenize_images_total"), 1, job.GoodKeys.Count);
            Assert.Equal(job.GoodKeys.Count, Sum(after, "wintok_tokenize_images_total"));
            Assert.True(Sum(after, "wintok_batches_total") >= done.Partitions, "fewer batches than partitions");
            Assert.Equal(Sum(after, "wintok_batches_total"), Sum(after, "wintok_batch_duration_seconds_count"));
            Assert.Equal(done.Partitions, Sum(after, "wintok_partitions_total", "outcome=\"committed\""));
            Assert.Equal(job.CorruptKeys.Count, Sum(after, "wintok_item_failures_total"));
            Assert.True(Sum(after, "wintok_queue_lag_seconds_count") >= done.Partitions, "no queue lag recorded per partition");

            var workers = await job.Workers.ListAsync(DateTimeOffset.UtcNow.AddMinutes(-10), Token);
            var worker = Assert.Single(workers, w => w.Name == "telemetry-scrape-worker-a");
            Assert.True(worker.IsAlive(DateTimeOffset.UtcNow, TimeSpan.FromSeconds(1)) || worker.State == WorkerState.Stopping,
                $"worker heartbeat at {worker.HeartbeatAt:O} is stale");
        });
    }

    [Fact]
    public async Task Tokenize_WithAnOtlpEndpoint_ExportsTheJobItsPartitionsAndBatchesAsOneTrace()
    {
        var folder = Path.Combine(Path.GetTempPath(), "wintok-telemetry-otlp", Guid.NewGuid().ToString("N"));
        using var collector = new LoopbackHttpRecorder(contentType: "application/x-protobuf");
        var none = new Dictionary<string, string>();
        var (sampleExit, _, sampleLog) = await WorkerProcess.RunAsync("sample", ["sample", folder], none, TimeSpan.FromMinutes(2));
        Assert.True(sampleExit == 0, sampleLog);

        var (exitCode, stdout, log) = await WorkerProcess.RunAsync("tokenize",
            ["tokenize", Path.Combine(folder, "images"), Path.Combine(folder, "tokens"), "--checkpoint", Path.Combine(folder, "random-tiny.safetensors"),
             "--files-per-partition", "10", "--device", "cpu"],
            new Dictionary<string, string>
            {
                ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.Address,
                ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            }, TimeSpan.FromMinutes(3));

        Assert.True(exitCode == 0, $"tokenize exited with {exitCode}:\n{log}");
        var jobId = CliTokenizeTests.JobIdIn(stdout);
        var traces = collector.Received("/v1/traces");
        Assert.Contains("wintok.job", traces, StringComparison.Ordinal);
        Assert.Contains("wintok.partition", traces, StringComparison.Ordinal);
        Assert.Contains("wintok.batch", traces, StringComparison.Ordinal);
        Assert.Contains(jobId.ToString(), traces, StringComparison.Ordinal);
        if (TestContext.Current.TestState?.Result != TestResult.Failed) Directory.Delete(folder, recursive: true);
    }

    /// <summary>The first scrape, once the worker's listener is up.</summary>
    private static async Task<IReadOnlyList<(string Name, string Labels, double Value)>> ScrapeWhenUpAsync(HttpClient http)
    {
        string? text = null;
        var up = await ServicesFixture.EventuallyAsync(async () =>
        {
            try
            {
                text = await http.GetStringAsync("/metrics", Token);
                return true;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(90));
        return up ? Parse(text!) : throw new XunitException("the worker's /metrics never answered");
    }

    /// <summary>Prometheus text format: one (name, labels, value) per sample line.</summary>
    private static IReadOnlyList<(string Name, string Labels, double Value)> Parse(string text) =>
        Sample().Matches(text).Select(m => (m.Groups[1].Value, m.Groups[2].Value, double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture))).ToList();

    private static double Sum(IReadOnlyList<(string Name, string Labels, double Value)> samples, string name, string? label = null) =>
        samples.Where(s => s.Name == name && (label is null || s.Labels.Contains(label, StringComparison.Ordinal))).Sum(s => s.Value);

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [GeneratedRegex(@"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eE]+|NaN)(?:\s+\d+)?$", RegexOptions.Multiline)]
    private static partial Regex Sample();
}
