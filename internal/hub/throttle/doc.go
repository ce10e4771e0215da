// Package throttle is a hub's quota enforcement: a token bucket per hub for
// device-to-cloud messages, off unless configured. Over the rate, work is
// refused with ErrThrottled (IoT Hub's ThrottlingException) rather than
// queued, so memory stays bounded under overload.
package throttle
