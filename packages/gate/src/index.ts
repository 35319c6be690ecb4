export {
  createGate,
  type Gate,
  type GateAdmission,
  type GateOptions,
  type GateRequest,
  type Ticket,
  type TicketData,
  type TicketOutcome,
} from "./gate.js";
