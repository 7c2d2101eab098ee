using System.Net;
using System.Net.Sockets;
using System.Text;

namespace WinTok.IntegrationTests;

/// <summary>
/// An HTTP endpoint on loopback that records every request (path and body) and answers with the given statuses in
/// turn, the last one from then on: a webhook receiver, or a stand-in OTLP/HTTP collector (protobuf keeps strings as
/// UTF-8 bytes, so span names and attribute values can be found in the bodies without a protobuf parser).
/// </summary>
internal sealed class LoopbackHttpRecorder : IDisposable
{
    private readonly HttpListener listener = new();
    private readonly List<(string Path, byte[] Body)> received = [];
    private readonly Queue<HttpStatusCode> statuses;
    private readonly HttpStatusCode last;
    private readonly string? contentType;
    private readonly Task serving;

    public LoopbackHttpRecorder(IReadOnlyList<HttpStatusCode>? answers = null, string? contentType = null)
    {
        answers = answers is { Count: > 0 } ? answers : [HttpStatusCode.OK];
        (statuses, last, this.contentType) = (new Queue<HttpStatusCode>(answers), answers[^1], contentType);
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        Address = $"http://127.0.0.1:{port}";
        listener.Prefixes.Add(Prefix);
        listener.Start();
        serving = Task.Run(ServeAsync);
    }

    /// <summary><c>http://127.0.0.1:PORT</c>, without a trailing slash.</summary>
    public string Address { get; }

    /// <summary><see cref="Address"/> with the trailing slash.</summary>
    public string Prefix => Address + "/";

    /// <summary>Every request so far, in order, its body read as UTF-8.</summary>
    public IReadOnlyList<(string Path, string Body)> Requests
    {
        get
        {
            lock (received) return received.Select(r => (r.Path, Encoding.UTF8.GetString(r.Body))).ToList();
        }
    }

    /// <summary>The bodies of the requests to <paramref name="path"/>, as UTF-8, one per line.</summary>
    public string Received(string path) => string.Join("\n", Requests.Where(r => r.Path == path).Select(r => r.Body));

    public void Dispose()
    {
        listener.Stop();
        listener.Close();
        try
        {
            serving.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // the listener was closed under a pending GetContextAsync
        }
    }

    private async Task ServeAsync()
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            lock (received) received.Add((context.Request.Url!.AbsolutePath, body.ToArray()));
            lock (statuses) context.Response.StatusCode = (int)(statuses.Count > 0 ? statuses.Dequeue() : last);
            if (contentType is not null) context.Response.ContentType = contentType;
            context.Response.Close();
        }
    }
}
