using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace WinTok.Messaging;

/// <summary>
/// Bounded closing of channels and connections at shutdown: a graceful close gets a few seconds, then the socket is
/// aborted. A close handshake with a broker that is restarting or unreachable must not hold up host shutdown.
/// </summary>
internal static class RabbitMqShutdown
{
    private static readonly TimeSpan GracePeriod = TimeSpan.FromSeconds(5);

    public static async Task CloseAsync(IChannel channel)
    {
        if (channel.IsOpen)
        {
            using var timeout = new CancellationTokenSource(GracePeriod);
            try
            {
                await channel.CloseAsync(Constants.ReplySuccess, "worker stopping", abort: false, timeout.Token);
            }
            catch (Exception exception) when (exception is OperationCanceledException or AlreadyClosedException or OperationInterruptedException)
            {
                await channel.AbortAsync(CancellationToken.None);
            }
        }
        await channel.DisposeAsync();
    }

    public static async Task CloseAsync(IConnection connection)
    {
        if (connection.IsOpen)
        {
            using var timeout = new CancellationTokenSource(GracePeriod);
            try
            {
                await connection.CloseAsync(Constants.ReplySuccess, "worker stopping", GracePeriod, abort: false, timeout.Token);
            }
            catch (Exception exception) when (exception is OperationCanceledException or AlreadyClosedException or OperationInterruptedException)
            {
                await connection.AbortAsync(GracePeriod);
            }
        }
        await connection.DisposeAsync();
    }
}
