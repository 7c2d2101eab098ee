using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using WinTok.ServiceDefaults;

namespace WinTok.Messaging;

/// <summary>
/// The process's one AMQP connection, opened on first use (retried while the broker is unreachable) with automatic
/// connection and topology recovery: after a broker restart the client reconnects, reopens channels, redeclares
/// queues and re-registers consumers. <see cref="Generation"/> counts connection losses, so a delivery received before
/// one is never acked on the new channel (its tag would be unknown there and the broker would close the channel). It
/// counts losses, not recoveries: the recovered consumer receives deliveries before <c>RecoverySucceededAsync</c> is
/// raised, and a delivery stamped with the pre-recovery generation would then never be settled, so with prefetch 1 the
/// consumer would wait forever (seen in FaultToleranceTests' broker restart).
/// </summary>
public sealed class RabbitMqConnection(
    IOptions<JobQueueOptions> options,
    [FromKeyedServices(RabbitMqConnection.PipelineKey)] ResiliencePipeline pipeline,
    ILogger<RabbitMqConnection> logger) : IAsyncDisposable
{
    /// <summary>The name of the broker's retry pipeline (<c>Resilience:Broker</c>).</summary>
    public const string PipelineKey = "Broker";

    private readonly SemaphoreSlim gate = new(1, 1);
    private IConnection? connection;
    private int generation;

    public int Generation => Volatile.Read(ref generation);

    /// <summary>Failures worth retrying: the connection or channel is closed (recovery under way) or the broker is unreachable.</summary>
    public static bool IsTransient(Exception exception) => exception switch
    {
        OperationCanceledException => false,
        AlreadyClosedException or BrokerUnreachableException or OperationInterruptedException => true,
        System.Net.Sockets.SocketException or IOException or TimeoutException => true,
        { InnerException: { } inner } => IsTransient(inner),
        _ => false,
    };

    public bool IsConnectionOpen => connection?.IsOpen == true;

    public async Task<IConnection> GetAsync(CancellationToken cancellationToken)
    {
        if (connection is { } open)
        {
            return open;
        }
        await gate.WaitAsync(cancellationToken);
        try
        {
            if (connection is null)
            {
                var uri = new Uri(options.Value.ConnectionString
                    ?? throw new InvalidOperationException("JobQueue:ConnectionString (or WINTOK_RABBITMQ) is not set"));
                var factory = new ConnectionFactory
                {
                    Uri = uri,
                    AutomaticRecoveryEnabled = true,
                    TopologyRecoveryEnabled = true,
                    NetworkRecoveryInterval = TimeSpan.FromSeconds(1),
                    ConsumerDispatchConcurrency = options.Value.PrefetchCount,
                    ClientProvidedName = $"wintok-worker@{Environment.MachineName}",
                };
                Log.ConnectingToBroker(logger, uri.Host, uri.Port);
                var created = await pipeline.ExecuteAsync(async token => await factory.CreateConnectionAsync(token), cancellationToken);
                created.ConnectionShutdownAsync += OnShutdownAsync;
                created.RecoverySucceededAsync += OnRecoveredAsync;
                connection = created;
                Log.ConnectedToBroker(logger, uri.Host, uri.Port);
            }
            return connection;
        }
        finally
        {
            gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (connection is { } open)
        {
            await RabbitMqShutdown.CloseAsync(open);
        }
        gate.Dispose();
    }

    private Task OnShutdownAsync(object sender, ShutdownEventArgs args)
    {
        if (args.Initiator != ShutdownInitiator.Application)
        {
            Interlocked.Increment(ref generation);
            Log.BrokerConnectionLost(logger, args.ReplyCode, args.ReplyText);
        }
        return Task.CompletedTask;
    }

    private Task OnRecoveredAsync(object sender, AsyncEventArgs args)
    {
        Log.BrokerConnectionRecovered(logger);
        return Task.CompletedTask;
    }
}
